package apperr_test

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apperr"
)

func TestEFormatsTheMessage(t *testing.T) {
	t.Parallel()
	err := apperr.E(apperr.NotFound, "user %d not found", 42)
	require.Equal(t, apperr.NotFound, err.Kind)
	require.Equal(t, "user 42 not found", err.Message)
	require.Equal(t, "user 42 not found", err.Error())
	require.Nil(t, err.Unwrap())
}

func TestWrapKeepsTheCause(t *testing.T) {
	t.Parallel()
	cause := io.ErrUnexpectedEOF
	err := apperr.Wrap(apperr.Unavailable, cause, "the %s is unavailable", "database")
	require.Equal(t, apperr.Unavailable, err.Kind)
	require.Equal(t, "the database is unavailable", err.Message)
	require.Equal(t, "the database is unavailable: unexpected EOF", err.Error())
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.Same(t, cause, err.Unwrap())
}

func TestErrorWithoutMessageShowsTheCause(t *testing.T) {
	t.Parallel()
	err := &apperr.Error{Kind: apperr.Internal, Err: errors.New("boom")}
	require.Equal(t, "boom", err.Error())
}

func TestValidationCountsFields(t *testing.T) {
	t.Parallel()
	one := apperr.Validation(apperr.FieldError{Location: "body", Field: "name", Message: "is required"})
	require.Equal(t, apperr.Invalid, one.Kind)
	require.Equal(t, "the request has 1 invalid field", one.Error())
	require.Equal(t, []apperr.FieldError{{Location: "body", Field: "name", Message: "is required"}}, one.Fields)

	two := apperr.Validation(
		apperr.FieldError{Location: "body", Field: "name", Message: "is required"},
		apperr.FieldError{Location: "query", Field: "limit", Message: "must be at most 1000"},
	)
	require.Equal(t, apperr.Invalid, two.Kind)
	require.Equal(t, "the request has 2 invalid fields", two.Error())
	require.Len(t, two.Fields, 2)
}

func TestKindIsFoundThroughWrapping(t *testing.T) {
	t.Parallel()
	inner := apperr.E(apperr.Conflict, "email already taken")
	wrapped := fmt.Errorf("user: create: %w", fmt.Errorf("store: %w", inner))

	require.Same(t, inner, apperr.As(wrapped))
	require.Equal(t, apperr.Conflict, apperr.KindOf(wrapped))
	require.True(t, apperr.Is(wrapped, apperr.Conflict))
	require.False(t, apperr.Is(wrapped, apperr.NotFound))
	require.Equal(t, "user: create: store: email already taken", wrapped.Error())
}

func TestOuterKindWinsOverWrappedKind(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("ctx: %w", apperr.Wrap(apperr.Invalid, apperr.E(apperr.NotFound, "no such user"), "assignee"))
	require.Equal(t, apperr.Invalid, apperr.KindOf(err))
	require.True(t, apperr.Is(err, apperr.Invalid))
}

func TestPlainErrorsAreInternal(t *testing.T) {
	t.Parallel()
	plain := fmt.Errorf("wrapped: %w", errors.New("disk on fire"))
	require.Nil(t, apperr.As(plain))
	require.Equal(t, apperr.Internal, apperr.KindOf(plain))
	require.True(t, apperr.Is(plain, apperr.Internal))
	require.False(t, apperr.Is(plain, apperr.NotFound))
}

func TestNilIsNoKind(t *testing.T) {
	t.Parallel()
	require.Nil(t, apperr.As(nil))
	require.False(t, apperr.Is(nil, apperr.Internal))
	require.False(t, apperr.Is(nil, apperr.NotFound))
}

func TestRateLimitedCarriesRetryAfter(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("login: %w", &apperr.Error{Kind: apperr.RateLimited, Message: "slow down", RetryAfter: 3 * time.Second})
	e := apperr.As(err)
	require.NotNil(t, e)
	require.Equal(t, 3*time.Second, e.RetryAfter)
}

func TestKindString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind apperr.Kind
		want string
	}{
		{apperr.Internal, "internal"},
		{apperr.Malformed, "malformed"},
		{apperr.Invalid, "invalid"},
		{apperr.Unauthorized, "unauthorized"},
		{apperr.Forbidden, "forbidden"},
		{apperr.NotFound, "not_found"},
		{apperr.Conflict, "conflict"},
		{apperr.PreconditionFailed, "precondition_failed"},
		{apperr.RateLimited, "rate_limited"},
		{apperr.Unavailable, "unavailable"},
		{apperr.TooLarge, "too_large"},
		{apperr.UnsupportedMediaType, "unsupported_media_type"},
		{apperr.Kind(200), "internal"},
	}
	seen := map[string]apperr.Kind{}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.kind.String(), "kind %d", tt.kind)
		if prev, dup := seen[tt.want]; dup && tt.kind <= apperr.UnsupportedMediaType {
			t.Fatalf("kinds %d and %d share the name %q", prev, tt.kind, tt.want)
		}
		seen[tt.want] = tt.kind
	}
}

func TestConstraintOfNamesTheViolatedConstraint(t *testing.T) {
	t.Parallel()
	err := &apperr.Error{Kind: apperr.Invalid, Message: "refers to a missing record", Constraint: "tasks_assignee_id_fkey"}
	require.Equal(t, "tasks_assignee_id_fkey", apperr.ConstraintOf(err))
	require.Equal(t, "tasks_assignee_id_fkey", apperr.ConstraintOf(fmt.Errorf("task: create: %w", err)), "found through wrapping")
	require.Empty(t, apperr.ConstraintOf(apperr.E(apperr.Invalid, "no constraint")))
	require.Empty(t, apperr.ConstraintOf(errors.New("plain")))
	require.Empty(t, apperr.ConstraintOf(nil))
}
