// Package e2e holds black-box tests that run the real gregor binary as a
// separate process and drive it with real Kafka clients: franz-go and sarama
// in-process, kcat (librdkafka) and the gregor CLI through exec.
//
// TestMain builds ./cmd/gregor once (or uses $GREGOR_BIN when set; with
// GREGOR_E2E_RACE=1 it builds the broker with the race detector and fails any
// test whose broker reports a race); each test starts its own broker on free
// loopback ports with a temporary data dir, so tests run in parallel. A broker's stdout and stderr are printed when its
// test fails. Nothing here is imported by the product; the package only has
// tests.
package e2e
