package auth

import (
	"time"

	"github.com/google/uuid"
)

// Account is a user as the services acting for them read it: who they are, whether they
// may act, and the generation of their access tokens. It never carries the password
// hash. It is the record the user record cache holds (Options.Users), which the user
// service and the agent runner read and invalidate too.
type Account struct {
	ID        int64
	Name      string
	Email     string
	IsAdmin   bool
	IsActive  bool
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
	// TokenGeneration moves on with every password change and deactivation; an access
	// token carries the generation it was issued at, and works only while it is current.
	TokenGeneration int64
}

// Credentials are an account with its password hash, which only this package reads:
// what a login, or the check of a current password, verifies a password against.
type Credentials struct {
	Account
	passwordHash string
}

// Session is a login session: one refresh-token family, from the login that started it
// until logout, reuse of a rotated refresh token, a password change or a deactivation
// ends it. Access tokens name their session and die with it. It is the record the
// session cache holds (Options.Sessions).
type Session struct {
	ID        int64
	FamilyID  uuid.UUID
	UserID    int64
	CreatedAt time.Time
	RevokedAt *time.Time // when the session ended; nil while it is open
}
