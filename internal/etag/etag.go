// Package etag formats entity tags from resource versions and evaluates the
// If-Match and If-None-Match conditions of RFC 9110.
package etag

import (
	"strconv"
	"strings"
)

// Format returns the strong entity tag of a resource version, quoted: "3".
func Format(version int64) string {
	return `"` + strconv.FormatInt(version, 10) + `"`
}

// Condition is a parsed If-Match or If-None-Match header. The zero value is an absent
// header, which every version satisfies.
type Condition struct {
	present bool
	any     bool
	tags    []string // opaque tags, quotes removed
	weakOK  bool     // If-None-Match compares weakly
}

// IfMatch parses an If-Match header value; nil or empty means absent.
func IfMatch(header *string) Condition { return parse(header, false) }

// IfNoneMatch parses an If-None-Match header value; nil or empty means absent.
func IfNoneMatch(header *string) Condition { return parse(header, true) }

func parse(header *string, weakOK bool) Condition {
	if header == nil || strings.TrimSpace(*header) == "" {
		return Condition{}
	}
	c := Condition{present: true, weakOK: weakOK}
	for _, part := range strings.Split(*header, ",") {
		part = strings.TrimSpace(part)
		if part == "*" {
			c.any = true
			continue
		}
		weak := strings.HasPrefix(part, "W/")
		if weak {
			if !weakOK {
				continue // If-Match uses strong comparison: a weak tag never matches
			}
			part = part[2:]
		}
		c.tags = append(c.tags, strings.Trim(part, `"`))
	}
	return c
}

// Present reports whether the header was sent.
func (c Condition) Present() bool { return c.present }

// Matches reports whether the condition's tags include the given version; an absent
// condition matches nothing.
func (c Condition) Matches(version int64) bool {
	if !c.present {
		return false
	}
	if c.any {
		return true
	}
	v := strconv.FormatInt(version, 10)
	for _, t := range c.tags {
		if t == v {
			return true
		}
	}
	return false
}

// Allows reports whether a write may go ahead on a resource at version: true when the
// header is absent or lists the version (If-Match semantics).
func (c Condition) Allows(version int64) bool {
	return !c.present || c.Matches(version)
}
