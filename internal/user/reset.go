package user

import (
	"context"
	"fmt"

	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/etag"
)

// ResetPassword sets the password of the user with the given email, as an
// administrator would, without the current one: dev mode uses it when it generated a
// new administrator password for an administrator that already exists, so the
// credentials it prints log in. Every session of the user ends, as with any password
// change. NotFound when no user has the email.
func (s *Service) ResetPassword(ctx context.Context, email, plain string) error {
	u, err := s.store.UserGetByEmail(ctx, email)
	if err != nil {
		return fmt.Errorf("user: reset password: %w", err)
	}
	_, err = s.Update(ctx, auth.Principal{IsAdmin: true}, u.ID, UpdateParams{Password: &plain}, etag.Condition{})
	return err
}
