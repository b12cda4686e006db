package nanochat

// Integration tests against a real nanochatd ($NC_BUILD_DIR/bin/nanochatd on 127.0.0.1:0):
// status calls; chat without a model (typed FailedPrecondition) and against a served tiny model
// (clients/testutil/nc_tiny_model, --model latest: Model.Status with its config, a greedy
// Complete reply that the streamed pieces reproduce, Model.Sample); typed errors, job handles
// over Train.TestJob, and the example program with and without a model.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "nanochat.dev/nanochat/v1"
)

type server struct {
	cmd  *exec.Cmd
	addr string
	dir  string
}

func buildDir() string {
	if d := os.Getenv("NC_BUILD_DIR"); d != "" {
		return d
	}
	return "../../../build"
}

func sourceDir() string {
	if d := os.Getenv("NC_SOURCE_DIR"); d != "" {
		return d
	}
	return filepath.Join(buildDir(), "..")
}

func startServer(t *testing.T, token string, args ...string) *server {
	t.Helper()
	return startIn(t, t.TempDir(), token, args...)
}

// startModelServer: the tiny served model's files in the data dir and its engine flags; args
// "--model", "latest" load it at startup.
func startModelServer(t *testing.T, args ...string) *server {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command(filepath.Join(sourceDir(), "clients", "testutil", "nc_tiny_model"),
		buildDir(), filepath.Join(dir, "data")).Output()
	if err != nil {
		t.Fatalf("nc_tiny_model: %v", err)
	}
	return startIn(t, dir, "", append(strings.Fields(string(out)), args...)...)
}

func startIn(t *testing.T, dir, token string, args ...string) *server {
	t.Helper()
	argv := []string{"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data")}
	if token != "" {
		p := filepath.Join(dir, "token")
		if err := os.WriteFile(p, []byte(token+"\n"), 0600); err != nil {
			t.Fatal(err)
		}
		argv = append(argv, "--token-file", p)
	}
	argv = append(argv, args...)
	cmd := exec.Command(filepath.Join(buildDir(), "bin", "nanochatd"), argv...)
	log, err := os.Create(filepath.Join(dir, "nanochatd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, dir: dir}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		re := regexp.MustCompile(`listening on (\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case s.addr = <-found:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("nanochatd did not start")
	}
	t.Cleanup(func() { s.stop(t) })
	// "serving on port" is logged just before nanochatd's main thread waits for signals; a
	// SIGTERM sent earlier can land on a thread created before main() blocked them
	for i := 0; i < 100; i++ {
		if b, _ := os.ReadFile(filepath.Join(dir, "nanochatd.log")); strings.Contains(string(b), "serving on port") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func (s *server) stop(t *testing.T) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	err := s.cmd.Wait()
	s.cmd = nil
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(s.dir, "nanochatd.log"))
		t.Errorf("nanochatd exited with %v; log:\n%s", err, b)
	}
}

func dial(t *testing.T, addr, token string) *Client {
	t.Helper()
	c, err := Dial(Options{Address: addr, Token: token, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestStatusCallSucceeds(t *testing.T) {
	s := startServer(t, "")
	c := dial(t, s.addr, "")
	if err := c.WaitReady(ctx(t)); err != nil {
		t.Fatal(err)
	}
	h, err := c.Health(ctx(t))
	if err != nil || h.GetStatus() != "ok" {
		t.Fatalf("health: %v %v", h, err)
	}
	m, err := c.ModelStatus(ctx(t))
	if err != nil || m.GetLoaded() {
		t.Fatalf("model status: %v %v", m, err)
	}
	cks, err := c.Checkpoints(ctx(t), nil)
	if err != nil || len(cks) != 0 {
		t.Fatalf("checkpoints: %v %v", cks, err)
	}
}

// greedy is the request of the served-model tests: temperature 0, 16 tokens, no tool, nothing stored.
func greedy() *pb.ChatRequest {
	return &pb.ChatRequest{MaxTokens: proto.Int32(16), Temperature: proto.Float32(0), Tools: proto.Bool(false),
		Ephemeral: proto.Bool(true)}
}

// readChat reads a chat stream to its end: the pieces' concatenation, their count, and the
// stream's error (nil when it ended with done).
func readChat(st *ChatStream) (string, int, error) {
	defer st.Close()
	var text strings.Builder
	n := 0
	for {
		piece, err := st.Next()
		if err == io.EOF {
			return text.String(), n, nil
		}
		if err != nil {
			return text.String(), n, err
		}
		text.WriteString(piece)
		n++
	}
}

func TestChatWithoutModelIsFailedPrecondition(t *testing.T) {
	s := startServer(t, "")
	c := dial(t, s.addr, "")
	st, err := c.Chat(ctx(t), "hello", greedy())
	if err != nil {
		t.Fatal(err)
	}
	text, _, err := readChat(st)
	if !errors.Is(err, ErrFailedPrecondition) || text != "" || st.Done() != nil {
		t.Fatalf("chat without a model: want FAILED_PRECONDITION, got %v (%q)", err, text)
	}
	if !strings.HasPrefix(err.Error(), "FAILED_PRECONDITION: ") || !strings.Contains(err.Error(), "no model loaded") {
		t.Fatalf("message: %q", err.Error())
	}
	if _, err := c.Complete(ctx(t), "hi", greedy()); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("complete without a model: %v", err)
	}
	bad := greedy()
	bad.Temperature = proto.Float32(5) // the gate checks ranges before the model
	if _, err := c.Complete(ctx(t), "hi", bad); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("temperature 5: %v", err)
	}
}

func TestServedModelStatusChatSample(t *testing.T) {
	s := startModelServer(t, "--model", "latest")
	c := dial(t, s.addr, "")
	m, err := c.ModelStatus(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.GetConfig()
	if !m.GetLoaded() || m.GetPhase() != pb.Phase_PHASE_SFT || m.GetModelTag() != "d2" || m.GetStep() != 0 ||
		m.GetDevice() != "cpu" || cfg.GetNLayer() != 2 || cfg.GetNEmbd() != 128 || cfg.GetSequenceLen() != 128 ||
		cfg.GetVocabSize() != 2048 {
		t.Fatalf("model status: %v", m)
	}
	r, err := c.Complete(ctx(t), "Hello there", greedy())
	if err != nil {
		t.Fatal(err)
	}
	if r.GetContent() == "" || r.GetTokensGenerated() == 0 || r.GetTokensGenerated() > 16 {
		t.Fatalf("complete: %v", r)
	}
	st, err := c.Chat(ctx(t), "Hello there", greedy())
	if err != nil {
		t.Fatal(err)
	}
	text, pieces, err := readChat(st)
	if err != nil {
		t.Fatal(err)
	}
	if text != r.GetContent() || st.Text() != text || pieces == 0 {
		t.Fatalf("stream %q (%d pieces) vs complete %q", text, pieces, r.GetContent())
	}
	if d := st.Done(); d.GetUsage().GetCompletionTokens() != r.GetTokensGenerated() || d.GetFinishReason() != r.GetFinishReason() {
		t.Fatalf("done %v vs complete %v", d, r)
	}
	sr, err := c.Sample(ctx(t), &pb.SampleRequest{Prompt: proto.String("ROMEO:"), MaxTokens: proto.Int32(4),
		Temperature: proto.Float32(0), NumSamples: proto.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.GetSamples()) != 2 || sr.GetSamples()[0] == "" || sr.GetSamples()[0] != sr.GetSamples()[1] {
		t.Fatalf("sample: %v", sr)
	}
}

func TestTypedAuthErrors(t *testing.T) {
	s := startServer(t, "go-admin-token-0123456789")
	if _, err := dial(t, s.addr, "").Health(ctx(t)); err != nil {
		t.Fatalf("health is public: %v", err)
	}
	_, err := dial(t, s.addr, "").ModelStatus(ctx(t))
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("want UNAUTHENTICATED, got %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Message == "" {
		t.Fatalf("want *Error with a message, got %#v", err)
	}
	if _, err := dial(t, s.addr, "wrong-token-0123456789").ModelStatus(ctx(t)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := dial(t, s.addr, "go-admin-token-0123456789").ModelStatus(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestArgumentAndStateErrors(t *testing.T) {
	s := startServer(t, "", "--enable-test-jobs")
	c := dial(t, s.addr, "")
	_, err := c.History(ctx(t), &pb.ChatHistoryRequest{PageSize: proto.Uint32(5000)})
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "page_size") {
		t.Fatalf("want INVALID_ARGUMENT page_size, got %v", err)
	}
	if _, err := c.Job("0123456789abcdef").Status(ctx(t)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("want NOT_FOUND, got %v", err)
	}
	if _, err := c.TrainBase(ctx(t), &pb.TrainBaseRequest{Depth: proto.Int32(100)}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("depth 100: %v", err)
	}
	if j, err := c.TrainBase(ctx(t), &pb.TrainBaseRequest{Depth: proto.Int32(1)}); err == nil {
		_, _ = j.Cancel(ctx(t)) // landed: a job handle
	} else if !errors.Is(err, ErrUnimplemented) && !errors.Is(err, ErrFailedPrecondition) { // no tokenizer
		t.Fatalf("train base: %v", err)
	}
	j, err := c.TestJob(ctx(t), &pb.TestJobRequest{Steps: proto.Int32(1), StepMs: proto.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Wait(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Cancel(ctx(t)); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("cancel finished job: %v", err)
	}
}

func TestJobProgressWaitCancel(t *testing.T) {
	s := startServer(t, "", "--enable-test-jobs")
	c := dial(t, s.addr, "")
	j, err := c.TestJob(ctx(t), &pb.TestJobRequest{Steps: proto.Int32(5), StepMs: proto.Int32(20)})
	if err != nil {
		t.Fatal(err)
	}
	if len(j.ID) != 16 {
		t.Fatalf("job id %q", j.ID)
	}
	ev, err := j.Progress(ctx(t), 1, true)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	var steps []int64
	var last *pb.JobEvent
	for {
		e, err := ev.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, e.GetSeq())
		if e.GetKind() == pb.EventKind_EVENT_PROGRESS {
			steps = append(steps, e.GetProgress().GetStep())
		}
		last = e
	}
	for i, q := range seqs {
		if q != uint64(i+1) {
			t.Fatalf("seqs out of order: %v", seqs)
		}
	}
	if len(steps) != 5 || steps[0] != 1 || steps[4] != 5 {
		t.Fatalf("steps %v", steps)
	}
	if last.GetState() != pb.JobState_JOB_SUCCEEDED {
		t.Fatalf("last event %v", last)
	}
	info, err := j.Wait(ctx(t))
	if err != nil || info.GetState() != pb.JobState_JOB_SUCCEEDED {
		t.Fatalf("wait: %v %v", info, err)
	}

	long, err := c.TestJob(ctx(t), &pb.TestJobRequest{Steps: proto.Int32(100000), StepMs: proto.Int32(20)})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := long.Wait(short); !errors.Is(err, ErrDeadlineExceeded) {
		t.Fatalf("want DEADLINE_EXCEEDED, got %v", err)
	}
	if _, err := long.Cancel(ctx(t)); err != nil {
		t.Fatal(err)
	}
	info, err = long.Wait(ctx(t))
	if err != nil || info.GetState() != pb.JobState_JOB_CANCELLED {
		t.Fatalf("after cancel: %v %v", info, err)
	}
	jobs, err := c.Jobs(ctx(t), 10)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("jobs: %v %v", jobs, err)
	}
}

func TestUnavailable(t *testing.T) {
	s := startServer(t, "")
	addr := s.addr
	s.stop(t)
	c := dial(t, addr, "")
	if _, err := c.Health(ctx(t)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("want UNAVAILABLE, got %v", err)
	}
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.WaitReady(short); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("wait ready: %v", err)
	}
}

func TestExampleRuns(t *testing.T) {
	s := startModelServer(t)
	run := func(wants ...string) {
		out, err := exec.Command(filepath.Join(buildDir(), "bin", "nanochat-go-example"), s.addr).CombinedOutput()
		if err != nil {
			t.Fatalf("example: %v\n%s", err, out)
		}
		for _, want := range wants {
			if !regexp.MustCompile(want).Match(out) {
				t.Fatalf("example output lacks %q:\n%s", want, out)
			}
		}
	}
	run("health: ok", "model: none loaded", "chat: not available: FAILED_PRECONDITION: ", "checkpoints: 0")
	c := dial(t, s.addr, "")
	if _, err := c.LoadModel(ctx(t), &pb.ModelLoadRequest{Phase: pb.Phase_PHASE_SFT.Enum()}); err != nil {
		t.Fatal(err)
	}
	run(`model: PHASE_SFT d2 step 0 \(2 layers, context 128\)`,
		`chat: done: [1-9][0-9]* tokens, FINISH_(LENGTH|STOP), session [0-9a-f]{32}\n`)
}
