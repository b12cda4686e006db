// Command nanochat-go-example: Go SDK example — health, model status, one streamed chat reply
// of at most 32 tokens (without a loaded model: its typed FailedPrecondition error), and the
// checkpoint count.
//
//	build/bin/nanochat-go-example 127.0.0.1:50051      (token from $NANOCHAT_TOKEN)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/protobuf/proto"

	"nanochat.dev/nanochat"
	pb "nanochat.dev/nanochat/v1"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nanochat-go-example HOST:PORT")
		os.Exit(2)
	}
	c, err := nanochat.Dial(nanochat.Options{Address: os.Args[1], Token: os.Getenv("NANOCHAT_TOKEN")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := c.Health(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "health:", err)
		os.Exit(1)
	}
	fmt.Printf("health: %s (version %s)\n", h.GetStatus(), h.GetVersion())
	m, err := c.ModelStatus(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "model:", err)
		os.Exit(1)
	}
	if m.GetLoaded() {
		fmt.Printf("model: %s %s step %d (%d layers, context %d)\n", m.GetPhase(), m.GetModelTag(), m.GetStep(),
			m.GetConfig().GetNLayer(), m.GetConfig().GetSequenceLen())
	} else {
		fmt.Println("model: none loaded")
	}
	s, err := c.Chat(ctx, "Why is the sky blue?", &pb.ChatRequest{MaxTokens: proto.Int32(32)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
	fmt.Print("chat: ")
	for {
		piece, err := s.Next()
		if err == io.EOF {
			d := s.Done()
			fmt.Printf("\nchat: done: %d tokens, %s, session %s\n", d.GetUsage().GetCompletionTokens(),
				d.GetFinishReason(), d.GetSessionId())
			break
		}
		if errors.Is(err, nanochat.ErrFailedPrecondition) { // no model loaded
			fmt.Println("not available:", err)
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "chat:", err)
			os.Exit(1)
		}
		fmt.Print(piece)
	}
	s.Close()
	cks, err := c.Checkpoints(ctx, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "checkpoints:", err)
		os.Exit(1)
	}
	fmt.Printf("checkpoints: %d\n", len(cks))
}
