package demoservice

import (
	"crypto/rand"
	"encoding/json"
	"time"
)

// Payment is a captured payment, the answer of POST /payments and
// GET /payments/{id}.
type Payment struct {
	ID        string      `json:"payment_id"`
	OrderID   string      `json:"order_id"`
	Amount    json.Number `json:"amount"` // exactly 2 decimals
	Currency  string      `json:"currency"`
	Status    string      `json:"status"` // "captured"
	CreatedAt time.Time   `json:"created_at"`
}

// Shipment is a shipment of a paid order, the answer of POST /shipments
// and GET /shipments/{id}.
type Shipment struct {
	ID        string    `json:"shipment_id"`
	OrderID   string    `json:"order_id"`
	PaymentID string    `json:"payment_id"`
	Address   string    `json:"address,omitempty"`
	Tracking  string    `json:"tracking"`
	Status    string    `json:"status"` // "label_created"
	CreatedAt time.Time `json:"created_at"`
}

// Notification is a message accepted for sending, the answer of
// POST /notifications.
type Notification struct {
	ID        string    `json:"notification_id"`
	OrderID   string    `json:"order_id"`
	Message   string    `json:"message"`
	Status    string    `json:"status"` // "queued"
	CreatedAt time.Time `json:"created_at"`
}

// Stats counts what the service did, the answer of GET /stats.
type Stats struct {
	Payments      int `json:"payments"`
	Shipments     int `json:"shipments"`
	Notifications int `json:"notifications"`
	// Requests counts every POST to /payments, /shipments or
	// /notifications, whatever its answer.
	Requests int `json:"requests"`
	// Replays counts answers replayed for a repeated key.
	Replays          int `json:"replays"`
	InjectedFailures int `json:"injected_failures"`
	// ByOrder counts what was made for each order_id.
	ByOrder map[string]OrderStats `json:"by_order"`
}

// OrderStats counts what was made for one order.
type OrderStats struct {
	Payments      int `json:"payments"`
	Shipments     int `json:"shipments"`
	Notifications int `json:"notifications"`
}

// newID returns prefix followed by 26 random base32 characters.
func newID(prefix string) string {
	return prefix + rand.Text()
}
