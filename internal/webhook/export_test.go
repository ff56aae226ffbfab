package webhook_test

import (
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/page"
)

func pageOf(limit int32) page.Request { return page.NewRequest(nil, &limit) }

func etagAny() etag.Condition { return etag.IfMatch(nil) }
