//go:build js

package client

import "context"

// localNetwork cannot know the network in a browser: all are one.
func localNetwork(context.Context, string, string) (string, error) { return "browser", nil }
