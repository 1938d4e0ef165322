package broker

import (
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("topic %q: %w", "t", kerr.TopicAlreadyExists), `topic "t"`},
		{fmt.Errorf("create: %w", fmt.Errorf("replication factor 3: %w", kerr.InvalidReplicationFactor)), "create: replication factor 3"},
		{kerr.InvalidConfig, kerr.InvalidConfig.Error()}, // nothing but the code: keep its text
		{errors.New("disk on fire"), "disk on fire"},
		{fmt.Errorf("%w, then more", kerr.InvalidConfig), kerr.InvalidConfig.Error() + ", then more"},
	} {
		got := errorMessage(tc.err)
		if got == nil || *got != tc.want {
			t.Errorf("errorMessage(%v) = %v, want %q", tc.err, got, tc.want)
		}
	}
	if errorMessage(nil) != nil {
		t.Error("errorMessage(nil) is not nil")
	}
}
