package llm_test

import (
	"context"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/llm"
	"enterprise-automation/internal/llmtest"
)

// TestConcurrentCompletionsReuseConnections runs rounds of concurrent completions and
// checks that later rounds reuse the connections of earlier ones instead of opening new
// ones (Go's default transport keeps only two idle connections per host).
func TestConcurrentCompletionsReuseConnections(t *testing.T) {
	const concurrency, rounds = 12, 10
	srv := llmtest.New(t)
	c := llm.New(llm.Config{APIKey: llmtest.APIKey, BaseURL: srv.BaseURL(), Concurrency: concurrency})
	req := llm.Request{Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")}}
	for range rounds {
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				res, err := c.Stream(context.Background(), req, func(string) {})
				if err != nil {
					t.Error(err)
					return
				}
				if res.Content != "done" {
					t.Errorf("content %q, want the scripted %q", res.Content, "done")
				}
			})
		}
		wg.Wait()
	}
	require.Equal(t, concurrency*rounds, srv.Hits())
	// A connection goes back to the pool just after its response ends, so a few of the next
	// round's requests may still open one; without reuse every round opens ten more.
	require.LessOrEqual(t, srv.Conns(), 2*concurrency, "connections opened for %d rounds of %d concurrent completions", rounds, concurrency)
}
