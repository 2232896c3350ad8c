package demoservice

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// object is a JSON object decoded one level deep, so that every error
// names its field.
type object map[string]json.RawMessage

// parseObject decodes body, which must be exactly one JSON object with no
// name twice.
func parseObject(body []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, badRequest("", "the body must be a JSON object")
	}
	o := object{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalidJSON(err)
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalidJSON(err)
		}
		if _, dup := o[name]; dup {
			return nil, badRequest(name, fmt.Sprintf("duplicate field %q", name))
		}
		o[name] = bytes.TrimSpace(raw)
	}
	if _, err := dec.Token(); err != nil {
		return nil, invalidJSON(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("", "the body must hold one JSON object and nothing after it")
	}
	return o, nil
}

func invalidJSON(err error) error {
	return badRequest("", fmt.Sprintf("the body is not valid JSON: %v", err))
}

func badRequest(field, msg string) *requestError {
	return &requestError{status: http.StatusBadRequest, field: field, msg: msg}
}

// fields reads an object's fields, keeping the first error; after one,
// reads return zero values.
type fields struct {
	o   object
	err error
}

// only refuses a field not in names.
func (f *fields) only(names ...string) {
	var unknown []string
	for name := range f.o {
		if !slices.Contains(names, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 && f.err == nil {
		slices.Sort(unknown)
		f.err = badRequest(unknown[0], fmt.Sprintf("unknown field %q; the fields are %s", unknown[0], strings.Join(names, ", ")))
	}
}

func (f *fields) fail(name, msg string) {
	if f.err == nil {
		f.err = badRequest(name, name+" "+msg)
	}
}

// raw returns a field's JSON, or false when it is absent or null.
func (f *fields) raw(name string) (json.RawMessage, bool) {
	raw, ok := f.o[name]
	if f.err != nil || !ok || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// text reads a string; a required one must be there and not blank.
func (f *fields) text(name string, required bool) string {
	raw, ok := f.raw(name)
	if !ok {
		if required {
			f.fail(name, "is required")
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		f.fail(name, "must be a string")
		return ""
	}
	if required && strings.TrimSpace(s) == "" {
		f.fail(name, "must not be empty")
	}
	return s
}

// amountPattern is a JSON number with at most 2 decimals and 15 digits
// before the point.
var amountPattern = regexp.MustCompile(`^(0|[1-9][0-9]{0,14})(?:\.([0-9]{1,2}))?$`)

// amount reads a required positive amount of money and returns it with
// exactly 2 decimals, as written (never through a float).
func (f *fields) amount(name string) json.Number {
	raw, ok := f.raw(name)
	if !ok {
		f.fail(name, "is required")
		return ""
	}
	s := string(raw)
	if s[0] != '-' && (s[0] < '0' || s[0] > '9') {
		f.fail(name, "must be a number")
		return ""
	}
	if s[0] == '-' {
		f.fail(name, "must be positive")
		return ""
	}
	m := amountPattern.FindStringSubmatch(s)
	if m == nil {
		f.fail(name, "must be a plain number with at most 2 decimals and 15 digits before the point, such as 12.50")
		return ""
	}
	cents := (m[2] + "00")[:2]
	if m[1] == "0" && cents == "00" {
		f.fail(name, "must be positive")
		return ""
	}
	return json.Number(m[1] + "." + cents)
}

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// currency reads an optional ISO 4217 code, by default EUR.
func (f *fields) currency(name string) string {
	c := f.text(name, false)
	switch {
	case c == "":
		return "EUR"
	case !currencyPattern.MatchString(c):
		f.fail(name, "must be a three-letter ISO 4217 code such as EUR")
	}
	return c
}

// paymentRequest is the body of POST /payments.
type paymentRequest struct {
	OrderID  string      `json:"order_id"`
	Amount   json.Number `json:"amount"`
	Currency string      `json:"currency"`
}

func parsePayment(o object) (request, error) {
	f := fields{o: o}
	f.only("order_id", "amount", "currency")
	p := paymentRequest{OrderID: f.text("order_id", true), Amount: f.amount("amount"), Currency: f.currency("currency")}
	return p, f.err
}

func (paymentRequest) check(*Service) error { return nil }

func (p paymentRequest) apply(s *Service) (int, any) {
	pay := Payment{ID: newID("pay_"), OrderID: p.OrderID, Amount: p.Amount, Currency: p.Currency,
		Status: "captured", CreatedAt: s.cfg.Now().UTC()}
	s.payments[pay.ID] = pay
	s.stats.Payments++
	s.tally(p.OrderID, func(o *OrderStats) { o.Payments++ })
	return http.StatusCreated, pay
}

// shipmentRequest is the body of POST /shipments.
type shipmentRequest struct {
	OrderID   string `json:"order_id"`
	PaymentID string `json:"payment_id"`
	Address   string `json:"address"`
}

func parseShipment(o object) (request, error) {
	f := fields{o: o}
	f.only("order_id", "payment_id", "address")
	q := shipmentRequest{OrderID: f.text("order_id", true), PaymentID: f.text("payment_id", true), Address: f.text("address", false)}
	return q, f.err
}

// check refuses a shipment unless it names a payment of its order.
func (q shipmentRequest) check(s *Service) error {
	p, ok := s.payments[q.PaymentID]
	switch {
	case !ok:
		return &requestError{status: http.StatusUnprocessableEntity, field: "payment_id",
			msg: fmt.Sprintf("payment_id %q names no payment", q.PaymentID)}
	case p.OrderID != q.OrderID:
		return &requestError{status: http.StatusUnprocessableEntity, field: "payment_id",
			msg: fmt.Sprintf("payment_id %q is a payment of another order", q.PaymentID)}
	}
	return nil
}

func (q shipmentRequest) apply(s *Service) (int, any) {
	shp := Shipment{ID: newID("shp_"), OrderID: q.OrderID, PaymentID: q.PaymentID, Address: q.Address,
		Tracking: newID("TRK"), Status: "label_created", CreatedAt: s.cfg.Now().UTC()}
	s.shipments[shp.ID] = shp
	s.stats.Shipments++
	s.tally(q.OrderID, func(o *OrderStats) { o.Shipments++ })
	return http.StatusCreated, shp
}

// notificationRequest is the body of POST /notifications.
type notificationRequest struct {
	OrderID string `json:"order_id"`
	Message string `json:"message"`
}

func parseNotification(o object) (request, error) {
	f := fields{o: o}
	f.only("order_id", "message")
	n := notificationRequest{OrderID: f.text("order_id", true), Message: f.text("message", true)}
	return n, f.err
}

func (notificationRequest) check(*Service) error { return nil }

func (n notificationRequest) apply(s *Service) (int, any) {
	ntf := Notification{ID: newID("ntf_"), OrderID: n.OrderID, Message: n.Message,
		Status: "queued", CreatedAt: s.cfg.Now().UTC()}
	s.notifications[ntf.ID] = ntf
	s.stats.Notifications++
	s.tally(n.OrderID, func(o *OrderStats) { o.Notifications++ })
	return http.StatusAccepted, ntf
}
