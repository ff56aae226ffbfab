package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// SecretPrefix starts every signing secret.
const SecretPrefix = "whsec_"

// RotationOverlap is how long the previous secret keeps signing after a rotation.
const RotationOverlap = 24 * time.Hour

// NewSecret returns a signing secret: "whsec_" + base64 of 32 random bytes.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook: secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// Sign returns the webhook-signature header value of a message: "v1,<signature>" with
// each secret, space-separated (two while a rotated secret still signs). It uses the
// Standard Webhooks library's signer.
func Sign(msgID string, at time.Time, body []byte, secrets ...string) (string, error) {
	out := ""
	for i, s := range secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			return "", fmt.Errorf("webhook: sign: %w", err)
		}
		sig, err := wh.Sign(msgID, at, body)
		if err != nil {
			return "", fmt.Errorf("webhook: sign: %w", err)
		}
		if i > 0 {
			out += " "
		}
		out += sig
	}
	return out, nil
}

// SetHeaders sets the Standard Webhooks headers of one attempt on h.
func SetHeaders(h http.Header, msgID string, at time.Time, signature string) {
	h.Set(standardwebhooks.HeaderWebhookID, msgID)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, signature)
}
