package nanochat

import (
	"context"
	"io"

	"google.golang.org/protobuf/proto"

	pb "nanochat.dev/nanochat/v1"
)

// Job is a job on the server (Train.*, Eval.Core/Chat, Train.TestJob).
type Job struct {
	c   *Client
	ID  string
	Ref *pb.JobRef // what the starter returned (nil for Client.Job handles)
}

// Terminal reports whether s is a final state.
func Terminal(s pb.JobState) bool {
	switch s {
	case pb.JobState_JOB_SUCCEEDED, pb.JobState_JOB_FAILED, pb.JobState_JOB_CANCELLED,
		pb.JobState_JOB_INTERRUPTED:
		return true
	}
	return false
}

// JobEvents iterates a Train.Status stream of one job.
type JobEvents struct {
	s      pb.Train_StatusClient
	cancel context.CancelFunc
	// Snapshot is the job as it was when the stream opened.
	Snapshot *pb.JobInfo
}

// Next returns the next event; io.EOF when the stream ended (the job ended, or no follow).
func (e *JobEvents) Next() (*pb.JobEvent, error) {
	ev, err := e.s.Recv()
	if err == io.EOF {
		return nil, io.EOF
	}
	return ev, wrap(err)
}

// Close stops following.
func (e *JobEvents) Close() { e.cancel() }

// Progress streams the job's stored events with seq >= fromSeq (0 = none), then with follow
// the live ones until the job ends. The opening SNAPSHOT is in Snapshot, not in Next.
func (j *Job) Progress(ctx context.Context, fromSeq uint64, follow bool) (*JobEvents, error) {
	ctx, cancel := context.WithCancel(ctx)
	s, err := j.c.Stubs.Train.Status(ctx, &pb.TrainStatusRequest{
		JobId: proto.String(j.ID), Follow: proto.Bool(follow), FromSeq: proto.Uint64(fromSeq)})
	if err != nil {
		cancel()
		return nil, wrap(err)
	}
	snap, err := s.Recv()
	if err != nil || snap.GetKind() != pb.EventKind_EVENT_SNAPSHOT {
		cancel()
		if err == nil || err == io.EOF {
			return nil, &Error{Code: ErrNotFound.Code, Message: "no snapshot for job " + j.ID}
		}
		return nil, wrap(err)
	}
	return &JobEvents{s: s, cancel: cancel, Snapshot: snap.GetJob()}, nil
}

// Status is the job as it is now.
func (j *Job) Status(ctx context.Context) (*pb.JobInfo, error) {
	ctx, cancel := j.c.unary(ctx, false)
	defer cancel()
	ev, err := j.Progress(ctx, 0, false)
	if err != nil {
		return nil, err
	}
	ev.Close()
	return ev.Snapshot, nil
}

// Cancel asks the server to cancel the job (it may still be stopping when this returns).
func (j *Job) Cancel(ctx context.Context) (*pb.JobInfo, error) {
	ctx, cancel := j.c.unary(ctx, false)
	defer cancel()
	r, err := j.c.Stubs.Train.Cancel(ctx, &pb.TrainCancelRequest{JobId: proto.String(j.ID)})
	return r, wrap(err)
}

// Wait follows the job until it ends and returns its final JobInfo (ctx bounds the wait).
func (j *Job) Wait(ctx context.Context) (*pb.JobInfo, error) {
	ev, err := j.Progress(ctx, 0, true)
	if err != nil {
		return nil, err
	}
	defer ev.Close()
	for {
		if _, err := ev.Next(); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
	}
	info, err := j.Status(context.Background())
	if err != nil {
		return nil, err
	}
	if !Terminal(info.GetState()) {
		return nil, &Error{Code: ErrInternal.Code, Message: "the job's stream ended before the job did"}
	}
	return info, nil
}
