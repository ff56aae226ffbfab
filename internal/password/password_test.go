package password_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/password"
)

// cheap keeps argon2id real but fast.
var cheap = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// verify calls Verify, turning a panic into a test failure so one bad input does not
// take the whole package down.
func verify(t *testing.T, hash, plain string) (ok bool, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("Verify(%q) panicked: %v", hash, r)
			ok, err = false, fmt.Errorf("panic: %v", r)
		}
	}()
	return password.Verify(hash, plain)
}

func TestHashAndVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	tests := map[string]password.Params{"default params": password.DefaultParams, "cheap params": cheap}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			hash, err := password.Hash("correct horse battery staple", p)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(hash, fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$", p.Memory, p.Time, p.Threads)), hash)

			ok, err := verify(t, hash, "correct horse battery staple")
			require.NoError(t, err)
			require.True(t, ok)

			ok, err = verify(t, hash, "correct horse battery stapl")
			require.NoError(t, err)
			require.False(t, ok, "a wrong password must not verify")
		})
	}
}

func TestVerifyIsCaseAndWhitespaceSensitive(t *testing.T) {
	t.Parallel()
	hash, err := password.Hash("Secret-Password", cheap)
	require.NoError(t, err)
	for _, wrong := range []string{"secret-password", "Secret-Password ", " Secret-Password", ""} {
		ok, err := verify(t, hash, wrong)
		require.NoError(t, err)
		require.False(t, ok, "%q", wrong)
	}
}

func TestEmptyPasswordHashesAndVerifies(t *testing.T) {
	t.Parallel()
	hash, err := password.Hash("", cheap)
	require.NoError(t, err)
	ok, err := verify(t, hash, "")
	require.NoError(t, err)
	require.True(t, ok)
}

func TestHashesOfTheSamePasswordDiffer(t *testing.T) {
	t.Parallel()
	a, err := password.Hash("same password", cheap)
	require.NoError(t, err)
	b, err := password.Hash("same password", cheap)
	require.NoError(t, err)
	require.NotEqual(t, a, b, "each hash must use a fresh salt")
	// The salt is the fifth field; it differs too.
	require.NotEqual(t, strings.Split(a, "$")[4], strings.Split(b, "$")[4])
}

func TestVerifyHonoursTheParamsStoredInTheHash(t *testing.T) {
	t.Parallel()
	low := password.Params{Memory: 32, Time: 1, Threads: 2, SaltLen: 8, KeyLen: 16}
	hash, err := password.Hash("pw-with-low-cost", low)
	require.NoError(t, err)
	require.Contains(t, hash, "$m=32,t=1,p=2$")

	ok, err := verify(t, hash, "pw-with-low-cost")
	require.NoError(t, err)
	require.True(t, ok, "a hash made with other params than the default still verifies")

	// Changing a stored parameter changes the derived key, so the password no longer matches:
	// proof that Verify reads the parameters from the hash.
	tampered := strings.Replace(hash, "t=1", "t=2", 1)
	ok, err = verify(t, tampered, "pw-with-low-cost")
	require.NoError(t, err)
	require.False(t, ok)
}

func TestVerifyRejectsMalformedHashes(t *testing.T) {
	t.Parallel()
	good, err := password.Hash("pw", cheap)
	require.NoError(t, err)
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=..,t=..,p=.., salt, key
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	tests := map[string]string{
		"empty":                 "",
		"plain text":            "pw",
		"bcrypt":                "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
		"argon2i":               with(1, "argon2i"),
		"too few fields":        strings.Join(parts[:5], "$"),
		"too many fields":       good + "$extra",
		"other version":         with(2, "v=16"),
		"no version":            with(2, "19"),
		"params not numbers":    with(3, "m=lots,t=1,p=1"),
		"params missing":        with(3, ""),
		"salt not base64":       with(4, "!!not base64!!"),
		"key not base64":        with(5, "***"),
		"empty key":             with(5, ""),
		"zero passes":           with(3, "m=64,t=0,p=1"),
		"zero parallelism":      with(3, "m=64,t=1,p=0"),
		"parallelism too large": with(3, "m=64,t=1,p=300"),
	}
	for name, hash := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ok, err := verify(t, hash, "pw")
			require.ErrorIs(t, err, password.ErrMalformedHash)
			require.False(t, ok)
		})
	}
}
