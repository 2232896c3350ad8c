package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/status"
)

// This file holds the step engine's writes. Each is conditional on the state
// the engine read, so a duplicate or stale runner gets ErrConflict instead
// of applying anything twice.

// ErrAlreadyCommitted: the step's idempotency record exists; its result and
// effects were committed before.
var ErrAlreadyCommitted = errors.New("step already committed")

// ErrTooManyResets: a run retry would reset more steps than one
// transaction can hold.
var ErrTooManyResets = errors.New("too many steps to reset in one retry")

func num(n int) types.AttributeValue { return &types.AttributeValueMemberN{Value: strconv.Itoa(n)} }

// tsLayout is RFC 3339 with a fixed nine-digit fraction, so that stored
// timestamps compare correctly as strings in condition expressions
// (RFC3339Nano drops trailing zeros: "05.12Z" would sort after "05.123Z").
const tsLayout = "2006-01-02T15:04:05.000000000Z07:00"

func ts(t time.Time) types.AttributeValue { return str(t.UTC().Format(tsLayout)) }

func stepKey(runID string, index int) map[string]types.AttributeValue {
	pk, _ := runKey(runID)
	return key(pk, stepSK(index))
}

// StartRun moves a pending run to running.
func (s *Store) StartRun(ctx context.Context, runID string, now time.Time) error {
	pk, sk := runKey(runID)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      key(pk, sk),
		UpdateExpression:         aws.String("SET #st = :running, started_at = :now, gsi2pk = :gsi"),
		ConditionExpression:      aws.String("#st = :pending"),
		ExpressionAttributeNames: map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":running": str(string(status.RunRunning)), ":pending": str(string(status.RunPending)),
			":now": ts(now), ":gsi": str(kindRun + "#" + string(status.RunRunning)),
		},
	})
	if err != nil {
		return fmt.Errorf("start run %s: %w", runID, conditionErr(err))
	}
	return nil
}

// MarkRunning takes the lease of a step for attempt number attempt (its
// retry_count): the step must be pending at that attempt, or running at that
// attempt with an expired lease (its runner died).
func (s *Store) MarkRunning(ctx context.Context, runID string, index, attempt int, token string, now, leaseUntil time.Time) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.table),
		Key:       stepKey(runID, index),
		UpdateExpression: aws.String("SET #st = :running, lease_token = :tok, lease_until = :until, " +
			"attempt_started_at = :now, started_at = if_not_exists(started_at, :now)"),
		ConditionExpression:      aws.String("retry_count = :attempt AND (#st = :pending OR (#st = :running AND lease_until < :now))"),
		ExpressionAttributeNames: map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":running": str(string(status.StepRunning)), ":pending": str(string(status.StepPending)),
			":tok": str(token), ":until": ts(leaseUntil), ":now": ts(now), ":attempt": num(attempt),
		},
	})
	if err != nil {
		return fmt.Errorf("mark step %s/%d running: %w", runID, index, conditionErr(err))
	}
	return nil
}

// OrderChange is the effect of an order action, applied in a step's commit
// to the order as it was read at Version.
type OrderChange struct {
	OrderID string
	Version int
	// To is the new status; empty for an action that only adds a history
	// entry.
	To status.Order
	// History is the order's whole new history (the old one plus the new
	// entry).
	History []HistoryEntry
}

// JoinUpdate lowers a dependent's deps_remaining from From to From-1.
type JoinUpdate struct {
	Index int
	From  int
}

// Commit is everything a successful attempt writes, atomically.
type Commit struct {
	RunID   string
	Index   int
	Attempt int
	Token   string
	Started time.Time
	Now     time.Time
	// Attempts are the step's earlier attempts; this one is added.
	Attempts []Attempt
	Order    *OrderChange
	Joins    []JoinUpdate
	// SinksFrom, when set, lowers the run's sinks_remaining from this value;
	// reaching zero completes the run.
	SinksFrom *int
}

// CommitConflict reports which item of a cancelled commit failed its
// condition.
type CommitConflict struct {
	Item  string // "step", "order", "join" or "run"
	Index int    // the dependent's index, for "join"
	Err   error
}

func (c *CommitConflict) Error() string {
	if c.Item == "join" {
		return fmt.Sprintf("commit conflict on dependent %d: %v", c.Index, c.Err)
	}
	return fmt.Sprintf("commit conflict on %s: %v", c.Item, c.Err)
}

func (c *CommitConflict) Unwrap() error { return ErrConflict }

func idemKey(runID string, index int) map[string]types.AttributeValue {
	return key(fmt.Sprintf("IDEM#%s#%d", runID, index), "IDEM")
}

// CommitStep commits a successful attempt in one transaction: the step's
// idempotency record (which must not exist), the step's completion
// (conditional on the attempt still holding the lease), the order change
// (conditional on the order's status), the join counters and the run's sink
// counter (conditional on the values read). It returns ErrAlreadyCommitted
// when the idempotency record exists, or a *CommitConflict.
func (s *Store) CommitStep(ctx context.Context, c Commit) error {
	attempts, err := attributevalue.Marshal(append(c.Attempts, Attempt{Number: len(c.Attempts) + 1, StartedAt: c.Started.UTC(), EndedAt: c.Now.UTC()}))
	if err != nil {
		return fmt.Errorf("encode attempts: %w", err)
	}
	idem := idemKey(c.RunID, c.Index)
	idem["run_id"] = str(c.RunID)
	idem["step_index"] = num(c.Index)
	idem["committed_at"] = ts(c.Now)
	items := []types.TransactWriteItem{
		{Put: &types.Put{
			TableName:           aws.String(s.table),
			Item:                idem,
			ConditionExpression: aws.String("attribute_not_exists(pk)"),
		}},
		{Update: &types.Update{
			TableName: aws.String(s.table),
			Key:       stepKey(c.RunID, c.Index),
			UpdateExpression: aws.String("SET #st = :completed, completed_at = :now, attempts = :attempts " +
				"REMOVE lease_token, lease_until, error_message"),
			ConditionExpression:      aws.String("#st = :running AND lease_token = :tok"),
			ExpressionAttributeNames: map[string]string{"#st": "status"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":completed": str(string(status.StepCompleted)), ":running": str(string(status.StepRunning)),
				":now": ts(c.Now), ":tok": str(c.Token), ":attempts": attempts,
			},
		}},
	}
	kinds := []CommitConflict{{Item: "idem"}, {Item: "step"}}
	if o := c.Order; o != nil {
		hist, err := attributevalue.Marshal(o.History)
		if err != nil {
			return fmt.Errorf("encode order history: %w", err)
		}
		u := &types.Update{
			TableName:           aws.String(s.table),
			Key:                 key(orderKey(o.OrderID)),
			UpdateExpression:    aws.String("SET updated_at = :now, history = :hist, version = :next"),
			ConditionExpression: aws.String("version = :version"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":now": ts(c.Now), ":hist": hist, ":version": num(o.Version), ":next": num(o.Version + 1),
			},
		}
		if o.To != "" {
			u.UpdateExpression = aws.String("SET updated_at = :now, history = :hist, version = :next, #st = :to")
			u.ExpressionAttributeNames = map[string]string{"#st": "status"}
			u.ExpressionAttributeValues[":to"] = str(string(o.To))
		}
		items = append(items, types.TransactWriteItem{Update: u})
		kinds = append(kinds, CommitConflict{Item: "order"})
	}
	for _, j := range c.Joins {
		items = append(items, types.TransactWriteItem{Update: &types.Update{
			TableName:           aws.String(s.table),
			Key:                 stepKey(c.RunID, j.Index),
			UpdateExpression:    aws.String("SET deps_remaining = :to"),
			ConditionExpression: aws.String("deps_remaining = :from"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":from": num(j.From), ":to": num(j.From - 1),
			},
		}})
		kinds = append(kinds, CommitConflict{Item: "join", Index: j.Index})
	}
	if c.SinksFrom != nil {
		u := &types.Update{
			TableName:                aws.String(s.table),
			Key:                      key(runKey(c.RunID)),
			UpdateExpression:         aws.String("SET sinks_remaining = :to"),
			ConditionExpression:      aws.String("sinks_remaining = :from AND #st = :running"),
			ExpressionAttributeNames: map[string]string{"#st": "status"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":from": num(*c.SinksFrom), ":to": num(*c.SinksFrom - 1), ":running": str(string(status.RunRunning)),
			},
		}
		if *c.SinksFrom == 1 {
			u.UpdateExpression = aws.String("SET sinks_remaining = :to, #st = :completed, completed_at = :now, gsi2pk = :gsi REMOVE gsi4pk, gsi4sk")
			u.ExpressionAttributeValues[":completed"] = str(string(status.RunCompleted))
			u.ExpressionAttributeValues[":now"] = ts(c.Now)
			u.ExpressionAttributeValues[":gsi"] = str(kindRun + "#" + string(status.RunCompleted))
		}
		items = append(items, types.TransactWriteItem{Update: u})
		kinds = append(kinds, CommitConflict{Item: "run"})
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err == nil {
		return nil
	}
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return fmt.Errorf("commit step %s/%d: %w", c.RunID, c.Index, err)
	}
	reasons := tce.CancellationReasons
	if len(reasons) > 0 && aws.ToString(reasons[0].Code) == "ConditionalCheckFailed" {
		return fmt.Errorf("commit step %s/%d: %w", c.RunID, c.Index, ErrAlreadyCommitted)
	}
	for i, r := range reasons {
		if aws.ToString(r.Code) == "ConditionalCheckFailed" && i < len(kinds) {
			cc := kinds[i]
			cc.Err = err
			return fmt.Errorf("commit step %s/%d: %w", c.RunID, c.Index, &cc)
		}
	}
	return fmt.Errorf("commit step %s/%d: %w", c.RunID, c.Index, err)
}

// RetryStep ends a failed attempt that has retries left: the step goes back
// to pending with retry_count+1, if the attempt still holds the lease.
func (s *Store) RetryStep(ctx context.Context, f FailedAttempt) error {
	return s.endAttempt(ctx, f, status.StepPending)
}

// FailedAttempt describes an attempt that failed.
type FailedAttempt struct {
	RunID   string
	Index   int
	Attempt int
	Token   string
	Error   string
	Started time.Time
	Now     time.Time
	// Attempts are the step's earlier attempts; this one is added.
	Attempts []Attempt
}

func (s *Store) endAttempt(ctx context.Context, f FailedAttempt, to status.Step) error {
	runID, index, token, msg, now := f.RunID, f.Index, f.Token, f.Error, f.Now
	rec, err := attributevalue.Marshal(append(f.Attempts, Attempt{Number: len(f.Attempts) + 1, StartedAt: f.Started.UTC(), EndedAt: now.UTC(), Error: msg}))
	if err != nil {
		return fmt.Errorf("encode attempts: %w", err)
	}
	var update string
	if to == status.StepPending {
		update = "SET #st = :to, error_message = :msg, retry_count = retry_count + :one, attempts = :attempts REMOVE lease_token, lease_until"
	} else {
		update = "SET #st = :to, error_message = :msg, completed_at = :now, attempts = :attempts REMOVE lease_token, lease_until"
	}
	vals := map[string]types.AttributeValue{
		":to": str(string(to)), ":running": str(string(status.StepRunning)), ":tok": str(token),
		":msg": str(msg), ":attempts": rec,
	}
	if to == status.StepPending {
		vals[":one"] = num(1)
	} else {
		vals[":now"] = ts(now)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       stepKey(runID, index),
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String("#st = :running AND lease_token = :tok"),
		ExpressionAttributeNames:  map[string]string{"#st": "status"},
		ExpressionAttributeValues: vals,
	})
	if err != nil {
		return fmt.Errorf("end attempt of step %s/%d: %w", runID, index, conditionErr(err))
	}
	return nil
}

// FailStep ends the last failed attempt: the step becomes failed. The
// caller then skips the steps that have not started and fails the run.
func (s *Store) FailStep(ctx context.Context, f FailedAttempt) error {
	return s.endAttempt(ctx, f, status.StepFailed)
}

// FailRun moves a pending or running run to failed. A run already terminal
// is left alone.
func (s *Store) FailRun(ctx context.Context, runID string, now time.Time) error {
	err := s.EndRun(ctx, runID, status.RunFailed, now)
	if errors.Is(err, ErrConflict) {
		return nil
	}
	return err
}

// EndRun moves a pending or running run to a terminal status and takes it
// out of the active index. It returns ErrConflict if the run is already
// terminal.
func (s *Store) EndRun(ctx context.Context, runID string, to status.Run, now time.Time) error {
	return s.endRun(ctx, runID, to, now, nil)
}

// EndRunAsRead is EndRun for a decision made on the run as read in d: it
// also returns ErrConflict if the run was retried since, so a sweeper that
// saw the previous attempt's steps cannot end the new one.
func (s *Store) EndRunAsRead(ctx context.Context, d RunDetail, to status.Run, now time.Time) error {
	return s.endRun(ctx, d.ID, to, now, &d.Retries)
}

func (s *Store) endRun(ctx context.Context, runID string, to status.Run, now time.Time, retries *int) error {
	cond := "#st IN (:pending, :running)"
	vals := map[string]types.AttributeValue{
		":to": str(string(to)), ":pending": str(string(status.RunPending)),
		":running": str(string(status.RunRunning)), ":now": ts(now),
		":gsi": str(kindRun + "#" + string(to)),
	}
	if retries != nil {
		cond += " AND retries = :retries"
		vals[":retries"] = num(*retries)
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(runKey(runID)),
		UpdateExpression:          aws.String("SET #st = :to, completed_at = :now, gsi2pk = :gsi REMOVE gsi4pk, gsi4sk"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  map[string]string{"#st": "status"},
		ExpressionAttributeValues: vals,
	})
	if err != nil {
		return fmt.Errorf("end run %s as %s: %w", runID, to, conditionErr(err))
	}
	return nil
}

// SettleStep moves a pending step to skipped or cancelled; a step in any
// other status is left alone.
func (s *Store) SettleStep(ctx context.Context, runID string, index int, to status.Step, now time.Time) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      stepKey(runID, index),
		UpdateExpression:         aws.String("SET #st = :to, completed_at = :now"),
		ConditionExpression:      aws.String("#st = :pending"),
		ExpressionAttributeNames: map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":to": str(string(to)), ":pending": str(string(status.StepPending)), ":now": ts(now),
		},
	})
	if err = conditionErr(err); err != nil && !errors.Is(err, ErrConflict) {
		return fmt.Errorf("settle step %s/%d as %s: %w", runID, index, to, err)
	}
	return nil
}

// ListActiveRuns returns the IDs of runs that are not terminal, oldest
// first, one page at a time.
func (s *Store) ListActiveRuns(ctx context.Context, p Page) ([]string, string, error) {
	ix := indexNamed(indexActive)
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(ix.Name),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": ix.PK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(activePartition)},
		Limit:                     aws.Int32(int32(p.Limit)),
	}
	if p.Cursor != "" {
		start := key(runKey(p.Cursor))
		start[ix.PK] = str(activePartition)
		start[ix.SK] = str(p.Cursor)
		in.ExclusiveStartKey = start
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("list active runs: %w", err)
	}
	ids := make([]string, 0, len(out.Items))
	for _, it := range out.Items {
		if v, ok := it[ix.SK].(*types.AttributeValueMemberS); ok {
			ids = append(ids, v.Value)
		}
	}
	next := ""
	if out.LastEvaluatedKey != nil && len(ids) > 0 {
		next = ids[len(ids)-1]
	}
	return ids, next, nil
}

// RetryRun resumes a failed or cancelled run as read in d: the run becomes
// running again (recording the retry), and every failed, skipped or
// cancelled step becomes pending with its retry count reset and its join
// counter recomputed; completed steps are untouched. Everything is one
// transaction conditioned on the statuses read, so a concurrent change
// makes it fail with ErrConflict. At most 99 steps can be reset at once.
func (s *Store) RetryRun(ctx context.Context, d RunDetail, now time.Time) error {
	if d.Status != status.RunFailed && d.Status != status.RunCancelled {
		return fmt.Errorf("retry run %s: status %s: %w", d.ID, d.Status, ErrConflict)
	}
	completed := map[string]bool{}
	sinks := 0
	for _, st := range d.Steps {
		completed[st.StepID] = st.Status == status.StepCompleted
		if len(st.Dependents) == 0 && st.Status != status.StepCompleted {
			sinks++
		}
	}
	items := []types.TransactWriteItem{{Update: &types.Update{
		TableName: aws.String(s.table),
		Key:       key(runKey(d.ID)),
		UpdateExpression: aws.String("SET #st = :running, retries = retries + :one, retried_at = :now, sinks_remaining = :sinks, " +
			"gsi2pk = :gsi, gsi4pk = :active, gsi4sk = :id REMOVE completed_at"),
		ConditionExpression:      aws.String("#st = :read"),
		ExpressionAttributeNames: map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":running": str(string(status.RunRunning)), ":read": str(string(d.Status)), ":one": num(1), ":now": ts(now),
			":sinks": num(sinks), ":gsi": str(kindRun + "#" + string(status.RunRunning)),
			":active": str(activePartition), ":id": str(d.ID),
		},
	}}}
	for _, st := range d.Steps {
		if st.Status == status.StepRunning {
			// An attempt still in flight must not commit between our read
			// and this write, or the counters computed here would be off.
			items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
				TableName:                aws.String(s.table),
				Key:                      stepKey(d.ID, st.StepIndex),
				ConditionExpression:      aws.String("#st = :running AND lease_token = :tok"),
				ExpressionAttributeNames: map[string]string{"#st": "status"},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":running": str(string(status.StepRunning)), ":tok": str(st.LeaseToken),
				},
			}})
			continue
		}
		if st.Status != status.StepFailed && st.Status != status.StepSkipped && st.Status != status.StepCancelled {
			continue
		}
		remaining := 0
		for _, dep := range st.DependsOn {
			if !completed[dep] {
				remaining++
			}
		}
		items = append(items, types.TransactWriteItem{Update: &types.Update{
			TableName:                aws.String(s.table),
			Key:                      stepKey(d.ID, st.StepIndex),
			UpdateExpression:         aws.String("SET #st = :pending, retry_count = :zero, deps_remaining = :deps REMOVE error_message, completed_at"),
			ConditionExpression:      aws.String("#st = :read"),
			ExpressionAttributeNames: map[string]string{"#st": "status"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pending": str(string(status.StepPending)), ":zero": num(0), ":deps": num(remaining), ":read": str(string(st.Status)),
			},
		}})
	}
	if len(items) > 100 {
		return fmt.Errorf("retry run %s: %d steps to reset or check, at most 99: %w", d.ID, len(items)-1, ErrTooManyResets)
	}
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err != nil {
		return fmt.Errorf("retry run %s: %w", d.ID, txErr(err))
	}
	return nil
}
