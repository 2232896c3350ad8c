package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/api"
	"stepflow/internal/engine"
	"stepflow/internal/queue"
	"stepflow/internal/store"
	"stepflow/internal/sweeper"
	"stepflow/internal/testenv"
)

// sent records the messages the API's starter sends.
type sent struct {
	mu   sync.Mutex
	msgs []queue.Message
}

func (q *sent) Send(_ context.Context, msgs []queue.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, msgs...)
	return nil
}

func (q *sent) take() []queue.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.msgs
	q.msgs = nil
	return out
}

func chainJSON(name string, n int) string {
	steps := []string{`{"id":"s00","config":{"duration_seconds":0}}`}
	for i := 1; i < n; i++ {
		steps = append(steps, fmt.Sprintf(`{"id":"s%02d","config":{"duration_seconds":0},"depends_on":["s%02d"]}`, i, i-1))
	}
	return `{"name":"` + name + `","steps":[` + strings.Join(steps, ",") + `]}`
}

// TestLostAnswersThroughTheAPI (issue 16, section 7): the API's writes
// whose answers are lost after they landed. Creating a run of more than 10
// steps used to answer 409 and delete the chunks of the run it had just
// created, leaving a run that existed but could not be read, and that
// made GET /runs/{id}, every runs page holding it and GET /runs/stats
// answer 500 for everyone. A cancel whose answer was lost answered 409
// (the run was cancelled: by itself), and a retry's answered 409 without
// sending the messages of the steps that start again.
func TestLostAnswersThroughTheAPI(t *testing.T) {
	t.Parallel()
	db, lose := testenv.LosingDynamoDB(t)
	q := &sent{}
	h := api.New(api.Config{Store: store.New(db, testenv.Table(t, db)), Starter: engine.Starter{Queue: q}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b := &bundle{t: t, url: srv.URL}

	var wf workflowBody
	b.must(http.StatusCreated, http.MethodPost, "/workflows", chainJSON("long", 30), &wf)
	lose.Lose("PutItem", 1, testenv.Containing(`"sk":{"S":"RUN"}`))
	var run runBody
	b.must(http.StatusAccepted, http.MethodPost, "/workflows/"+wf.ID+"/runs", "", &run)
	if lost := lose.Lost(); len(lost) != 1 {
		t.Fatalf("answers lost: %v", lost)
	}
	if msgs := q.take(); len(msgs) != 1 || msgs[0].RunID != run.ID {
		t.Fatalf("root messages %+v", msgs)
	}
	b.must(http.StatusOK, http.MethodGet, "/runs/"+run.ID, "", nil)
	b.must(http.StatusOK, http.MethodGet, "/runs", "", nil)
	b.must(http.StatusOK, http.MethodGet, "/runs/stats", "", nil)

	lose.Lose("TransactWriteItems", 1, testenv.Containing(":end"))
	var cancelled runBody
	b.must(http.StatusOK, http.MethodPost, "/runs/"+run.ID+"/cancel", "", &cancelled)
	if cancelled.Status != "cancelled" {
		t.Fatalf("after a cancel whose answer was lost: %s", cancelled.Status)
	}
	lose.Lose("TransactWriteItems", 1, testenv.Containing(":g1"))
	var retried runBody
	b.must(http.StatusAccepted, http.MethodPost, "/runs/"+run.ID+"/retry", "", &retried)
	if retried.Status != "running" {
		t.Fatalf("after a retry whose answer was lost: %s", retried.Status)
	}
	if msgs := q.take(); len(msgs) != 1 || msgs[0].StepIndex != 0 || msgs[0].Gen != 1 {
		t.Fatalf("a retry whose answer was lost sent %+v, want the root's message in generation 1", msgs)
	}
	if lost := lose.Lost(); len(lost) != 3 {
		t.Fatalf("answers lost: %v", lost)
	}
}

// TestOneUnreadableRunBreaksNothing: a run whose items cannot be decoded
// (here its second chunk is gone) is left out of lists and statistics,
// counted in the Stepflow-Unreadable-Runs header, and skipped and counted
// by the sweeper; everyone else's runs are listed as before.
func TestOneUnreadableRunBreaksNothing(t *testing.T) {
	t.Parallel()
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	st := store.New(db, table)
	srv := httptest.NewServer(api.New(api.Config{Store: st}))
	t.Cleanup(srv.Close)
	b := &bundle{t: t, url: srv.URL}
	var wf workflowBody
	b.must(http.StatusCreated, http.MethodPost, "/workflows", chainJSON("long", 30), &wf)
	var bad, good runBody
	b.must(http.StatusAccepted, http.MethodPost, "/workflows/"+wf.ID+"/runs", "", &bad)
	b.must(http.StatusAccepted, http.MethodPost, "/workflows/"+wf.ID+"/runs", "", &good)
	if _, err := db.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{
		TableName: aws.String(table),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "RUN#" + bad.ID}, "sk": &types.AttributeValueMemberS{Value: "RUN#C02"},
		},
	}); err != nil {
		t.Fatal(err)
	}
	var list []runBody
	r := b.must(http.StatusOK, http.MethodGet, "/runs", "", &list)
	if len(list) != 1 || list[0].ID != good.ID || r.header.Get(api.UnreadableHeader) != "1" {
		t.Fatalf("runs %+v, %s %q", list, api.UnreadableHeader, r.header.Get(api.UnreadableHeader))
	}
	var stats struct {
		Window     int `json:"window"`
		Unreadable int `json:"unreadable"`
	}
	b.must(http.StatusOK, http.MethodGet, "/runs/stats", "", &stats)
	if stats.Window != 1 || stats.Unreadable != 1 {
		t.Fatalf("stats %+v", stats)
	}
	b.must(http.StatusOK, http.MethodGet, "/runs/"+good.ID, "", nil)
	rep, err := (&sweeper.Sweeper{Store: st, Queue: &sent{}, Grace: 0}).Sweep(context.Background())
	if err != nil || rep.Runs != 2 || rep.Unreadable != 1 || rep.Requeued != 1 {
		t.Fatalf("sweep %+v, %v", rep, err)
	}
}
