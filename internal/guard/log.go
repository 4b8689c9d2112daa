package guard

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// go-redis prints its own notices (a Sentinel naming a new primary, a pool
// that cannot dial) with the standard logger, as unstructured lines on
// stderr. They go to the process's slog logger instead, like the Kafka
// clients' (internal/kafka), so a failover reads as one structured log.
// go-redis does not print credentials in them.
func init() { redis.SetLogger(clientLog{}) }

type clientLog struct{}

func (clientLog) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().Log(ctx, slog.LevelWarn, "redis client: "+strings.TrimSpace(fmt.Sprintf(format, v...)))
}
