package nanochat

// Integration tests against a real nanochatd ($NC_BUILD_DIR/bin/nanochatd on 127.0.0.1:0):
// one status call that must succeed and one chat call that must give a reply or the typed
// Unimplemented / FailedPrecondition error (the engine has not landed yet), typed errors, job
// handles over Train.TestJob, and the example program.

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

func startServer(t *testing.T, token string, args ...string) *server {
	t.Helper()
	dir := t.TempDir()
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

func TestChatReplyOrUnimplemented(t *testing.T) {
	s := startServer(t, "")
	c := dial(t, s.addr, "")
	st, err := c.Chat(ctx(t), "hello", &pb.ChatRequest{MaxTokens: proto.Int32(16), Ephemeral: proto.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var text strings.Builder
	for {
		piece, err := st.Next()
		if err == io.EOF {
			if st.Done() == nil || st.Text() != text.String() {
				t.Fatalf("reply without done: %q", text.String())
			}
			break // the engine landed: a complete reply
		}
		if err != nil {
			if !errors.Is(err, ErrUnimplemented) && !errors.Is(err, ErrFailedPrecondition) {
				t.Fatalf("chat: want a reply or UNIMPLEMENTED/FAILED_PRECONDITION, got %v", err)
			}
			if !strings.HasPrefix(err.Error(), "UNIMPLEMENTED: ") && Code(err) == ErrUnimplemented.Code {
				t.Fatalf("message: %q", err.Error())
			}
			break
		}
		text.WriteString(piece)
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
	s := startServer(t, "")
	out, err := exec.Command(filepath.Join(buildDir(), "bin", "nanochat-go-example"), s.addr).CombinedOutput()
	if err != nil {
		t.Fatalf("example: %v\n%s", err, out)
	}
	for _, want := range []string{"health: ok", "model: none loaded", "chat: ", "checkpoints: 0"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("example output lacks %q:\n%s", want, out)
		}
	}
}
