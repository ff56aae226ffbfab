// Package apperr defines the error kinds the domain speaks in. Services return them
// (wrapped with context as they travel up); the HTTP layer maps each kind to a status
// in exactly one place.
package apperr

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error by what the caller should do about it.
type Kind uint8

// The kinds, from "our fault" to "yours".
const (
	Internal             Kind = iota // a bug or an unexpected failure; details are never shown to clients
	Malformed                        // the request could not be parsed
	Invalid                          // well-formed but fails validation
	Unauthorized                     // missing or bad credentials
	Forbidden                        // authenticated but not allowed
	NotFound                         // no such resource (or not visible to the caller)
	Conflict                         // clashes with current state (duplicate, illegal transition)
	PreconditionFailed               // If-Match did not match
	RateLimited                      // too many requests
	Unavailable                      // a dependency is down; retry later
	TooLarge                         // request body too large
	UnsupportedMediaType             // request body in a content type the operation does not take
	QuotaExceeded                    // the caller holds as much of a resource as allowed; retry once some is freed
	InsufficientScope                // authenticated with an API key that lacks the scope the operation requires
)

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case Malformed:
		return "malformed"
	case Invalid:
		return "invalid"
	case Unauthorized:
		return "unauthorized"
	case Forbidden:
		return "forbidden"
	case NotFound:
		return "not_found"
	case Conflict:
		return "conflict"
	case PreconditionFailed:
		return "precondition_failed"
	case RateLimited:
		return "rate_limited"
	case Unavailable:
		return "unavailable"
	case TooLarge:
		return "too_large"
	case UnsupportedMediaType:
		return "unsupported_media_type"
	case QuotaExceeded:
		return "quota_exceeded"
	case InsufficientScope:
		return "insufficient_scope"
	default:
		return "internal"
	}
}

// FieldError describes one invalid field of a request.
type FieldError struct {
	Location string // body, query, path or header
	Field    string // dotted path within the location
	Message  string
}

// Error is a domain error of a given kind. Message is safe to show to clients, except
// for Internal errors, whose message is only logged.
type Error struct {
	Kind       Kind
	Message    string
	Fields     []FieldError  // Invalid only
	RetryAfter time.Duration // RateLimited only
	Constraint string        // the database constraint a write violated, when one did (see ConstraintOf)
	Err        error         // the cause, for logs
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		if e.Message == "" {
			return e.Err.Error()
		}
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// E builds an error of the given kind with a formatted message.
func E(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Wrap builds an error of the given kind that keeps err as its cause.
func Wrap(kind Kind, err error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...), Err: err}
}

// Validation builds an Invalid error listing the bad fields.
func Validation(fields ...FieldError) *Error {
	msg := "the request has 1 invalid field"
	if len(fields) != 1 {
		msg = fmt.Sprintf("the request has %d invalid fields", len(fields))
	}
	return &Error{Kind: Invalid, Message: msg, Fields: fields}
}

// As returns the first *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// KindOf returns the kind of the first *Error in err's chain; Internal when there is none.
func KindOf(err error) Kind {
	if e := As(err); e != nil {
		return e.Kind
	}
	return Internal
}

// ConstraintOf returns the name of the database constraint behind the first *Error in
// err's chain (a foreign key, check or unique constraint the store translated), so that
// a service can tell which rule a write broke without reading messages; "" when there
// is none.
func ConstraintOf(err error) string {
	if e := As(err); e != nil {
		return e.Constraint
	}
	return ""
}

// Is reports whether err is (or wraps) an *Error of the given kind.
func Is(err error, kind Kind) bool {
	return err != nil && KindOf(err) == kind
}
