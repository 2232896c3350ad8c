package devstack_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"stepflow/internal/devstack"
	"stepflow/internal/testenv"
)

// embedded starts a stack on the embedded emulator.
func embedded(t *testing.T, cfg devstack.Config) *devstack.Stack {
	t.Helper()
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "")
	t.Setenv("AWS_ENDPOINT_URL_SQS", "")
	cfg.Table = testenv.Name(t, "dev")
	st, err := devstack.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if !st.Embedded {
		t.Fatal("want the embedded emulator")
	}
	return st
}

// call sends a request to base+path under the Host header host ("" keeps
// the URL's) and returns the status and body.
func call(t *testing.T, method, base, path, host, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func port(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// dynamo is an unsigned DynamoDB call, as the tests' attacker would send.
func dynamo(op string) map[string]string {
	return map[string]string{"X-Amz-Target": "DynamoDB_20120810." + op, "Content-Type": "application/x-amz-json-1.0"}
}

// TestStackAnswersOnlyLoopbackHosts shows the DNS-rebinding defence: the
// API, the dashboard and the embedded emulator refuse a request addressed
// to another host name before any handler runs, and answer the same
// request addressed to 127.0.0.1 or localhost.
func TestStackAnswersOnlyLoopbackHosts(t *testing.T) {
	st := embedded(t, devstack.Config{Addr: "127.0.0.1:0"})
	apiPort, emuPort := port(t, st.URL), port(t, st.DynamoDB)
	auth := map[string]string{"Authorization": "Bearer " + st.Token, "Content-Type": "application/json"}
	tests := []struct {
		name, method, base, path, host, body string
		header                               map[string]string
		want                                 int
	}{
		{"API, evil host", "GET", st.URL, "/workflows", "evil.example", "", auth, http.StatusMisdirectedRequest},
		{"API, evil host with port", "GET", st.URL, "/workflows", "evil.example:" + apiPort, "", auth, http.StatusMisdirectedRequest},
		{"API write, evil host", "POST", st.URL, "/orders", "evil.example:" + apiPort, `{"amount": 1}`, auth, http.StatusMisdirectedRequest},
		{"dashboard, evil host", "GET", st.URL, "/", "evil.example:" + apiPort, "", nil, http.StatusMisdirectedRequest},
		{"healthz, evil host", "GET", st.URL, "/healthz", "evil.example:" + apiPort, "", nil, http.StatusMisdirectedRequest},
		{"API, 127.0.0.1", "GET", st.URL, "/workflows", "127.0.0.1:" + apiPort, "", auth, http.StatusOK},
		{"API, localhost", "GET", st.URL, "/workflows", "localhost:" + apiPort, "", auth, http.StatusOK},
		{"API, [::1]", "GET", st.URL, "/workflows", "[::1]:" + apiPort, "", auth, http.StatusOK},
		{"API, a .localhost name", "GET", st.URL, "/workflows", "stepflow.localhost:" + apiPort, "", auth, http.StatusOK},
		{"dashboard, 127.0.0.1", "GET", st.URL, "/", "127.0.0.1:" + apiPort, "", nil, http.StatusOK},
		{"emulator, evil host", "POST", st.DynamoDB, "/", "evil.example:" + emuPort, "{}", dynamo("ListTables"), http.StatusMisdirectedRequest},
		{"emulator, 127.0.0.1", "POST", st.DynamoDB, "/", "127.0.0.1:" + emuPort, "{}", dynamo("ListTables"), http.StatusOK},
		{"emulator, localhost", "POST", st.DynamoDB, "/", "localhost:" + emuPort, "{}", dynamo("ListTables"), http.StatusOK},
		// A form POST from a page on any site needs no rebinding, only the
		// port, and kumo answers the query protocol (SNS, IAM, ...) to
		// unsigned form posts: the emulator answers no browser at all.
		{"emulator, a page's form post", "POST", st.SQS, "/", "127.0.0.1:" + emuPort, "Action=CreateTopic&Name=from-a-page",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"}, http.StatusForbidden},
		{"emulator, the same post from a tool", "POST", st.SQS, "/", "127.0.0.1:" + emuPort, "Action=CreateTopic&Name=from-a-tool",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusOK},
		{"emulator, a browser's request", "POST", st.DynamoDB, "/", "127.0.0.1:" + emuPort, "{}",
			map[string]string{"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call(t, tt.method, tt.base, tt.path, tt.host, tt.body, tt.header)
			if code != tt.want {
				t.Fatalf("%s %s with Host %s: %d, want %d: %s", tt.method, tt.path, tt.host, code, tt.want, body)
			}
		})
	}
}

// TestNonLoopbackStackAnswersAddressesAndAllowedNames checks the rule for
// a stack bound to every address on purpose: any IP address as the Host
// (it cannot be rebound) and the names it is told, nothing else; the
// emulator stays on loopback names.
func TestNonLoopbackStackAnswersAddressesAndAllowedNames(t *testing.T) {
	st := embedded(t, devstack.Config{Addr: "0.0.0.0:0", AllowedHosts: []string{"devbox.lan"}})
	if st.AutoSignIn {
		t.Fatal("a stack on every address signs the dashboard in")
	}
	apiPort, emuPort := port(t, st.URL), port(t, st.DynamoDB)
	local := "http://127.0.0.1:" + apiPort
	tests := []struct {
		name, base, path, host string
		header                 map[string]string
		method, body           string
		want                   int
	}{
		{"API, an address", local, "/healthz", "192.0.2.10:" + apiPort, nil, "GET", "", http.StatusOK},
		{"API, an IPv6 address", local, "/healthz", "[2001:db8::10]:" + apiPort, nil, "GET", "", http.StatusOK},
		{"API, an allowed name", local, "/healthz", "DevBox.lan:" + apiPort, nil, "GET", "", http.StatusOK},
		{"API, localhost", local, "/healthz", "localhost:" + apiPort, nil, "GET", "", http.StatusOK},
		{"API, another name", local, "/healthz", "evil.example:" + apiPort, nil, "GET", "", http.StatusMisdirectedRequest},
		{"emulator, an address", st.DynamoDB, "/", "192.0.2.10:" + emuPort, dynamo("ListTables"), "POST", "{}", http.StatusMisdirectedRequest},
		{"emulator, an allowed name", st.DynamoDB, "/", "devbox.lan:" + emuPort, dynamo("ListTables"), "POST", "{}", http.StatusMisdirectedRequest},
		{"emulator, 127.0.0.1", st.DynamoDB, "/", "127.0.0.1:" + emuPort, dynamo("ListTables"), "POST", "{}", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call(t, tt.method, tt.base, tt.path, tt.host, tt.body, tt.header)
			if code != tt.want {
				t.Fatalf("%s %s with Host %s: %d, want %d: %s", tt.method, tt.path, tt.host, code, tt.want, body)
			}
		})
	}
}
