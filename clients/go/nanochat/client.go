// Package nanochat is the Go SDK of nanochatd: a thin wrapper over the stubs protoc-gen-go and
// protoc-gen-go-grpc generate from proto/ at build time (package nanochat.dev/nanochat/v1).
//
//	c, err := nanochat.Dial(nanochat.Options{Address: "127.0.0.1:50051", Token: os.Getenv("NANOCHAT_TOKEN")})
//	h, err := c.Health(ctx)
//	s, err := c.Chat(ctx, "Why is the sky blue?", nil)
//	for { piece, err := s.Next(); if err == io.EOF { break } ... }
//	job, err := c.TrainBase(ctx, &pb.TrainBaseRequest{Depth: proto.Int32(4)})
//	ev, err := job.Progress(ctx, 1, true)   // ev.Next() until io.EOF
//
// Every call returns *Error on failure (errors.Is(err, nanochat.ErrUnimplemented), ...).
// The generated clients stay reachable for everything else: c.Stubs.Train.Status(...).
// API reference: docs/api.md.
package nanochat

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	pb "nanochat.dev/nanochat/v1"
)

// Options of Dial.
type Options struct {
	Address    string        // "host:port" (default 127.0.0.1:50051)
	Token      string        // bearer token ("" = none)
	TLS        bool          // TLS with RootPEM (nil = system roots)
	RootPEM    []byte        // PEM of the CA to trust
	ServerName string        // name checked in the certificate ("" = from Address)
	Timeout    time.Duration // unary calls whose ctx has no deadline (default 30 s)
}

// Stubs are the generated clients, one per service of proto/nanochat/v1/services.proto.
type Stubs struct {
	Chat       pb.ChatClient
	Checkpoint pb.CheckpointClient
	Eval       pb.EvalClient
	Health     pb.HealthClient
	Model      pb.ModelClient
	Tokenizer  pb.TokenizerClient
	Tools      pb.ToolsClient
	Train      pb.TrainClient
}

// Client is a connection to one nanochatd; safe for concurrent use.
type Client struct {
	conn    *grpc.ClientConn
	timeout time.Duration
	Stubs   Stubs
}

type tokenAuth string

func (t tokenAuth) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity is false: nanochatd serves plaintext on loopback (it refuses a
// non-loopback listener without TLS unless told otherwise).
func (t tokenAuth) RequireTransportSecurity() bool { return false }

// Dial creates a client; the connection is made lazily (see WaitReady).
func Dial(o Options) (*Client, error) {
	if o.Address == "" {
		o.Address = "127.0.0.1:50051"
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	var dopts []grpc.DialOption
	if o.TLS || o.RootPEM != nil {
		cfg := &tls.Config{ServerName: o.ServerName, MinVersion: tls.VersionTLS12}
		if o.RootPEM != nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(o.RootPEM) {
				return nil, &Error{Code: ErrInvalidArgument.Code, Message: "RootPEM holds no certificate"}
			}
			cfg.RootCAs = pool
		}
		dopts = append(dopts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		dopts = append(dopts, grpc.WithInsecure())
	}
	if o.Token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(tokenAuth(o.Token)))
	}
	conn, err := grpc.Dial(o.Address, dopts...)
	if err != nil {
		return nil, wrap(err)
	}
	c := &Client{conn: conn, timeout: o.Timeout}
	c.Stubs = Stubs{pb.NewChatClient(conn), pb.NewCheckpointClient(conn), pb.NewEvalClient(conn),
		pb.NewHealthClient(conn), pb.NewModelClient(conn), pb.NewTokenizerClient(conn),
		pb.NewToolsClient(conn), pb.NewTrainClient(conn)}
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// WaitReady blocks until the connection is up or ctx ends (ErrUnavailable).
func (c *Client) WaitReady(ctx context.Context) error {
	for {
		s := c.conn.GetState()
		if s == connectivity.Ready {
			return nil
		}
		if !c.conn.WaitForStateChange(ctx, s) {
			return &Error{Code: ErrUnavailable.Code, Message: "not connected: " + ctx.Err().Error()}
		}
	}
}

// unary gives ctx the client's timeout when it has no deadline and the method has no server
// default (serverDefault).
func (c *Client) unary(ctx context.Context, serverDefault bool) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || serverDefault {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// Health is nanochat.v1.Health/Check.
func (c *Client) Health(ctx context.Context) (*pb.HealthCheckResponse, error) {
	ctx, cancel := c.unary(ctx, false)
	defer cancel()
	r, err := c.Stubs.Health.Check(ctx, &pb.HealthCheckRequest{})
	return r, wrap(err)
}

// ModelStatus is Model.Status.
func (c *Client) ModelStatus(ctx context.Context) (*pb.ModelStatus, error) {
	ctx, cancel := c.unary(ctx, false)
	defer cancel()
	r, err := c.Stubs.Model.Status(ctx, &pb.ModelStatusRequest{})
	return r, wrap(err)
}

// LoadModel is Model.Load.
func (c *Client) LoadModel(ctx context.Context, req *pb.ModelLoadRequest) (*pb.ModelStatus, error) {
	ctx, cancel := c.unary(ctx, true)
	defer cancel()
	r, err := c.Stubs.Model.Load(ctx, req)
	return r, wrap(err)
}

// Sample is Model.Sample: raw continuations of a prompt from the served model.
func (c *Client) Sample(ctx context.Context, req *pb.SampleRequest) (*pb.SampleResponse, error) {
	ctx, cancel := c.unary(ctx, true)
	defer cancel()
	r, err := c.Stubs.Model.Sample(ctx, req)
	return r, wrap(err)
}

// Checkpoints is Checkpoint.List (req may be nil).
func (c *Client) Checkpoints(ctx context.Context, req *pb.CheckpointListRequest) ([]*pb.CheckpointInfo, error) {
	if req == nil {
		req = &pb.CheckpointListRequest{}
	}
	ctx, cancel := c.unary(ctx, false)
	defer cancel()
	r, err := c.Stubs.Checkpoint.List(ctx, req)
	if err != nil {
		return nil, wrap(err)
	}
	return r.GetCheckpoints(), nil
}

// History is Chat.History (req may be nil: list sessions).
func (c *Client) History(ctx context.Context, req *pb.ChatHistoryRequest) (*pb.ChatHistoryResponse, error) {
	if req == nil {
		req = &pb.ChatHistoryRequest{}
	}
	ctx, cancel := c.unary(ctx, false)
	defer cancel()
	r, err := c.Stubs.Chat.History(ctx, req)
	return r, wrap(err)
}

func withPrompt(prompt string, opts *pb.ChatRequest) *pb.ChatRequest {
	req := &pb.ChatRequest{}
	if opts != nil {
		req = proto.Clone(opts).(*pb.ChatRequest)
	}
	req.Messages = []*pb.ChatMessage{{Role: pb.Role_ROLE_USER.Enum(), Content: proto.String(prompt)}}
	return req
}

// ChatStream iterates the text pieces of a Chat.Stream reply.
type ChatStream struct {
	s      pb.Chat_StreamClient
	cancel context.CancelFunc
	done   *pb.ChatDone
	text   []byte
}

// Next returns the next text piece; io.EOF once the reply is complete (Done is then set),
// *Error on failure.
func (s *ChatStream) Next() (string, error) {
	for s.done == nil {
		ev, err := s.s.Recv()
		if err == io.EOF {
			return "", &Error{Code: ErrInternal.Code, Message: "stream ended without done"}
		}
		if err != nil {
			return "", wrap(err)
		}
		if d := ev.GetDone(); d != nil {
			s.done = d
			break
		}
		if t := ev.GetDelta().GetText(); t != "" {
			s.text = append(s.text, t...)
			return t, nil
		}
	}
	return "", io.EOF
}

// Done is the final message (finish reason, usage, session id), nil before the end.
func (s *ChatStream) Done() *pb.ChatDone { return s.done }

// Text is the reply so far.
func (s *ChatStream) Text() string { return string(s.text) }

// Close cancels the call if it is still running.
func (s *ChatStream) Close() { s.cancel() }

// Chat streams a reply to one user message; opts (may be nil) carries the other ChatRequest
// fields (temperature, session_id, ...).
func (c *Client) Chat(ctx context.Context, prompt string, opts *pb.ChatRequest) (*ChatStream, error) {
	return c.ChatRequest(ctx, withPrompt(prompt, opts))
}

// ChatRequest streams a reply to a full ChatRequest.
func (c *Client) ChatRequest(ctx context.Context, req *pb.ChatRequest) (*ChatStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	s, err := c.Stubs.Chat.Stream(ctx, req)
	if err != nil {
		cancel()
		return nil, wrap(err)
	}
	return &ChatStream{s: s, cancel: cancel}, nil
}

// Complete is Chat.Complete with one user message.
func (c *Client) Complete(ctx context.Context, prompt string, opts *pb.ChatRequest) (*pb.ChatResponse, error) {
	ctx, cancel := c.unary(ctx, true)
	defer cancel()
	r, err := c.Stubs.Chat.Complete(ctx, withPrompt(prompt, opts))
	return r, wrap(err)
}

// Execute is Tools.Execute (Python in the server's sandbox).
func (c *Client) Execute(ctx context.Context, req *pb.ExecuteRequest) (*pb.ExecuteResponse, error) {
	ctx, cancel := c.unary(ctx, true)
	defer cancel()
	r, err := c.Stubs.Tools.Execute(ctx, req)
	return r, wrap(err)
}

// start calls a job starter with the client's timeout and wraps its JobRef in a Job.
func (c *Client) start(ctx context.Context, call func(context.Context) (*pb.JobRef, error)) (*Job, error) {
	ctx, cancel := c.unary(ctx, false)
	defer cancel()
	ref, err := call(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	return &Job{c: c, ID: ref.GetJobId(), Ref: ref}, nil
}

// TrainTokenizer starts Train.Tokenizer.
func (c *Client) TrainTokenizer(ctx context.Context, req *pb.TrainTokenizerRequest) (*Job, error) {
	return c.start(ctx, func(ctx context.Context) (*pb.JobRef, error) { return c.Stubs.Train.Tokenizer(ctx, req) })
}

// TrainBase starts Train.Base (pretraining).
func (c *Client) TrainBase(ctx context.Context, req *pb.TrainBaseRequest) (*Job, error) {
	return c.start(ctx, func(ctx context.Context) (*pb.JobRef, error) { return c.Stubs.Train.Base(ctx, req) })
}

// TrainSft starts Train.Sft.
func (c *Client) TrainSft(ctx context.Context, req *pb.TrainSftRequest) (*Job, error) {
	return c.start(ctx, func(ctx context.Context) (*pb.JobRef, error) { return c.Stubs.Train.Sft(ctx, req) })
}

// TrainRl starts Train.Rl.
func (c *Client) TrainRl(ctx context.Context, req *pb.TrainRlRequest) (*Job, error) {
	return c.start(ctx, func(ctx context.Context) (*pb.JobRef, error) { return c.Stubs.Train.Rl(ctx, req) })
}

// TestJob starts Train.TestJob (servers run with --enable-test-jobs).
func (c *Client) TestJob(ctx context.Context, req *pb.TestJobRequest) (*Job, error) {
	return c.start(ctx, func(ctx context.Context) (*pb.JobRef, error) { return c.Stubs.Train.TestJob(ctx, req) })
}

// EvalCore starts Eval.Core.
func (c *Client) EvalCore(ctx context.Context, req *pb.EvalCoreRequest) (*Job, error) {
	return c.start(ctx, func(ctx context.Context) (*pb.JobRef, error) { return c.Stubs.Eval.Core(ctx, req) })
}

// EvalChat starts Eval.Chat.
func (c *Client) EvalChat(ctx context.Context, req *pb.EvalChatRequest) (*Job, error) {
	return c.start(ctx, func(ctx context.Context) (*pb.JobRef, error) { return c.Stubs.Eval.Chat(ctx, req) })
}

// Job is a handle of an existing job (no call is made).
func (c *Client) Job(id string) *Job { return &Job{c: c, ID: id} }

// Jobs lists every job, newest first.
func (c *Client) Jobs(ctx context.Context, limit uint32) ([]*pb.JobInfo, error) {
	ctx, cancel := c.unary(ctx, false)
	defer cancel()
	s, err := c.Stubs.Train.Status(ctx, &pb.TrainStatusRequest{Limit: proto.Uint32(limit)})
	if err != nil {
		return nil, wrap(err)
	}
	var out []*pb.JobInfo
	for {
		ev, err := s.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, wrap(err)
		}
		if ev.GetKind() == pb.EventKind_EVENT_SNAPSHOT {
			out = append(out, ev.GetJob())
		}
	}
}
