package devstack

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"time"
	"unsafe"

	"github.com/sivchari/kumo"

	"stepflow/internal/loopback"
)

// Emulator is the kumo AWS emulator served on a loopback port, answering
// only requests addressed to a loopback name (loopback.Only) and refusing
// any request a web browser sends (loopback.NoBrowsers): it checks no
// credentials, so a page that reached it could write the token table.
type Emulator struct {
	// URL is the endpoint for AWS SDK clients, "http://127.0.0.1:port".
	URL  string
	srv  *http.Server
	done chan error
}

// StartEmulator starts the emulator on a free loopback port. Its data is
// kumo's, kept in memory for the life of the process.
func StartEmulator() (*Emulator, error) {
	h, err := kumoHandler()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the emulator: %w", err)
	}
	e := &Emulator{
		URL: "http://" + ln.Addr().String(),
		// No read or write timeout: SQS long polls hold a request open.
		srv:  &http.Server{Handler: loopback.Only(loopback.NoBrowsers(h)), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute},
		done: make(chan error, 1),
	}
	go func() { e.done <- e.srv.Serve(ln) }()
	return e, nil
}

// Close stops the emulator at once, closing its connections.
func (e *Emulator) Close() error {
	err := e.srv.Close()
	if serr := <-e.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// kumoHandler returns the http.Handler of the kumo emulator (its state is
// kumo's, process-wide). kumo v0.33 hands out its handler only inside an
// httptest.Server it has already started on 127.0.0.1 (kumo.NewServer), so
// there is no way to put a check in front of it but to take the handler out
// of that server, through the unexported field that holds it, and close the
// server at once. If a kumo upgrade moves the field, this fails with an
// error (every test of the embedded stack then fails) rather than serving
// the emulator unguarded; a kumo that exports its handler makes it a plain
// call.
func kumoHandler() (http.Handler, error) {
	emu := kumo.NewServer()
	defer emu.Close()
	f := reflect.ValueOf(emu).Elem().FieldByName("httpServer")
	if !f.IsValid() || f.Type() != reflect.TypeFor[*httptest.Server]() {
		return nil, errors.New("cannot guard the kumo emulator: kumo.Server no longer holds an *httptest.Server in httpServer (kumo was upgraded?)")
	}
	ts := *(**httptest.Server)(unsafe.Pointer(f.UnsafeAddr()))
	if ts == nil || ts.Config == nil || ts.Config.Handler == nil {
		return nil, errors.New("cannot guard the kumo emulator: its httptest.Server has no handler")
	}
	return ts.Config.Handler, nil
}
