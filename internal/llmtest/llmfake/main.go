// Command llmfake serves the scripted OpenAI-compatible model of package llmtest as a
// process, for end-to-end tests written in other languages (the TypeScript client's and
// the console's). It prints the value for OPENAI_BASE_URL on its first line and serves
// until interrupted; tests script its replies with a POST of a JSON array of
// llmtest.Reply to llmtest.ScriptPath. The API key it accepts is llmtest.APIKey.
//
//	go run ./internal/llmtest/llmfake
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"enterprise-automation/internal/llmtest"
)

func main() {
	s := llmtest.Start()
	defer s.Close()
	fmt.Println(s.BaseURL())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
}
