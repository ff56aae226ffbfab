package webhook_test

import (
	"testing"

	"enterprise-automation/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }
