package store

import (
	"errors"
	"fmt"
	"time"

	"stepflow/internal/envconfig"
)

// EnvOptions reads the store's settings from the environment, as every
// function that opens the table does: STEPFLOW_INDEX_SHARDS (1 to
// MaxShards, default DefaultShards) and STEPFLOW_RETENTION_DAYS (default
// 90).
func EnvOptions() ([]Option, error) {
	shards, errShards := envconfig.Int("STEPFLOW_INDEX_SHARDS", DefaultShards)
	if errShards == nil && shards > MaxShards {
		errShards = fmt.Errorf("STEPFLOW_INDEX_SHARDS=%d: at most %d", shards, MaxShards)
	}
	days, errDays := envconfig.Int("STEPFLOW_RETENTION_DAYS", int(DefaultRetention/(24*time.Hour)))
	if err := errors.Join(errShards, errDays); err != nil {
		return nil, err
	}
	return []Option{WithShards(shards), WithRetention(time.Duration(days) * 24 * time.Hour)}, nil
}
