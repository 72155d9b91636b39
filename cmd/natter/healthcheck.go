// natter healthcheck: a probe for images without curl.

package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

func (m *Main) runHealthcheck(ctx context.Context, args []string) error {
	f := newFlags("natter healthcheck", "natter healthcheck: GET --url and exit 0 if it answers 200", m.Stderr)
	url := f.String("url", "http://127.0.0.1:8080/readyz", "URL to probe")
	if err := f.parse(args, m.Getenv); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", *url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck %s: %s", *url, resp.Status)
	}
	return nil
}
