package engine_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"stepflow/internal/id"
	"stepflow/internal/retry"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
)

// TestOrderOutlivesTenThousandRuns: after 10,000 runs added a history entry
// to one order, a run on it still commits every effect, and GET
// /orders/{id} returns the first page of its history with the cursor of
// the next; the pages hold every entry once. (First design: the history
// lived in the order item, which passed DynamoDB's 400 KB item limit after
// a few thousand entries, and every later commit on the order failed.)
func TestOrderOutlivesTenThousandRuns(t *testing.T) {
	t.Parallel()
	touches := 10_000
	if testing.Short() {
		touches = 1_000 // ten pages of history; make test FULL=1 runs all 10,000
	}
	b := setup(t, options{scale: 0.001})
	ctx := context.Background()
	var wf, o struct {
		ID string `json:"id"`
	}
	b.post("/workflows", `{"name":"notify","steps":[{"id":"n","config":{"action":"send_notification","duration_seconds":0}}]}`, &wf)
	b.post("/orders", `{"amount": 5}`, &o)
	w, plan, err := b.store.Plan(ctx, wf.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The engine's own writes for each run: create, then commit the step
	// from pending, as a step run in its parent's invocation is.
	ids := id.NewGenerator(nil, nil)
	policy := retry.Default(func() float64 { return 0 })
	work := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				now := time.Now()
				r := runstate.New(ids.New("run"), w.ID, w.Name, o.ID, plan, now)
				if err := b.store.CreateRunIfAbsent(ctx, r, nil); err != nil {
					errs <- err
					return
				}
				done := runstate.BuildCommit(r, plan, status.OrderPending,
					[]runstate.Outcome{{Step: 0, Held: runstate.Pending0, Start: now, End: now}}, policy, now)
				if err := b.store.CommitIfHeld(ctx, done, ids.New("cmt")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range touches {
		select {
		case work <- i:
		case err := <-errs:
			t.Fatal(err)
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// A full order run on the same order still commits each effect once.
	var run struct {
		ID string `json:"id"`
	}
	var ord struct {
		ID string `json:"id"`
	}
	b.post("/workflows", example(t, "order-processing.json"), &ord)
	b.post("/workflows/"+ord.ID+"/runs", `{"order_id":"`+o.ID+`"}`, &run)
	if d := b.wait(run.ID, 60*time.Second); d.Status != status.RunCompleted {
		t.Fatalf("order run on a busy order: %s", d.Status)
	}

	// The API pages the history: 1 creation + 10,000 notifications + 4
	// entries of the last run.
	code, got := getJSON(t, b.url+"/orders/"+o.ID)
	if code != http.StatusOK {
		t.Fatalf("GET order: %d", code)
	}
	var first struct {
		Status      status.OrderStatus `json:"status"`
		History     []json.RawMessage  `json:"history"`
		HistoryNext *string            `json:"history_next"`
	}
	if err := json.Unmarshal(got, &first); err != nil {
		t.Fatal(err)
	}
	if first.Status != status.OrderShipped || len(first.History) != 100 || first.HistoryNext == nil {
		t.Fatalf("order %s with %d entries on the first page, next %v", first.Status, len(first.History), first.HistoryNext)
	}
	total, pages := 0, 0
	link := regexp.MustCompile(`<([^>]+)>; rel="next"`)
	for url := b.url + "/orders/" + o.ID + "/history?limit=200"; url != ""; pages++ {
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var page []json.RawMessage
		if err := json.NewDecoder(res.Body).Decode(&page); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		total += len(page)
		url = ""
		if m := link.FindStringSubmatch(res.Header.Get("Link")); m != nil {
			url = b.url + m[1]
		}
	}
	if want := 1 + touches + 4; total != want {
		t.Fatalf("paged %d history entries in %d pages, want %d", total, pages, want)
	}
}

func getJSON(t *testing.T, url string) (int, []byte) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(res.Body).Decode(&raw)
	return res.StatusCode, raw
}
