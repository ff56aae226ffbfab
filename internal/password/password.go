// Package password hashes and verifies passwords with argon2id, storing the parameters
// with each hash (PHC string format) so they can be raised later without breaking
// existing hashes.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	SaltLen uint32
	KeyLen  uint32
}

// DefaultParams follow OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane).
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// ErrMalformedHash is returned by Verify for a stored hash it cannot parse.
var ErrMalformedHash = errors.New("password: malformed hash")

var b64 = base64.RawStdEncoding

// slots bounds concurrent hashing: argon2id is CPU-bound, so more hashes at once than
// there are CPUs add no throughput, only memory (each holds Memory KiB).
var slots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

func argon2ID(plain string, salt []byte, p Params, keyLen uint32) []byte {
	slots <- struct{}{}
	defer func() { <-slots }()
	return argon2.IDKey([]byte(plain), salt, p.Time, p.Memory, p.Threads, keyLen)
}

// Hash returns the PHC-formatted argon2id hash of plain. It fails only when the system's
// random source does.
func Hash(plain string, p Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := argon2ID(plain, salt, p, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether plain matches the hash, in constant time. It returns
// ErrMalformedHash when the hash cannot be parsed.
func Verify(hash, plain string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, ErrMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, ErrMalformedHash
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return false, ErrMalformedHash
	}
	// argon2 panics on zero costs, and a tampered hash must not demand unbounded work.
	if p.Memory == 0 || p.Time == 0 || p.Threads == 0 || p.Memory > 1<<20 || p.Time > 64 {
		return false, ErrMalformedHash
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, ErrMalformedHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, ErrMalformedHash
	}
	got := argon2ID(plain, salt, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
