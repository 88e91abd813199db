// Asks tokend for the access token, then calls the Acoustic XML API with it.
//
//	ACOUSTIC_API_URL=https://api-campaign-us-1.goacoustic.com/XMLAPI go run client.go
//
// TOKEND_URL (default http://127.0.0.1:8439) names the daemon and
// TOKEND_ATTEMPTS (default 5) bounds the tries while it has no token yet.
// Standard library only.
package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const getLists = "<Envelope><Body><GetLists>" +
	"<VISIBILITY>1</VISIBILITY><LIST_TYPE>2</LIST_TYPE>" +
	"</GetLists></Body></Envelope>"

var (
	success = regexp.MustCompile(`(?i)<SUCCESS>\s*true\s*</SUCCESS>`)
	fault   = regexp.MustCompile(`(?s)<FaultString>(.*?)</FaultString>`)
)

func fetchToken(client *http.Client, tokendURL string, attempts int) (string, error) {
	request, err := http.NewRequest(http.MethodGet, tokendURL+"/token", nil)
	if err != nil {
		return "", err
	}
	request.Header.Set("Tokend-Request", "1")
	request.Header.Set("Accept", "text/plain")

	for attempt := 1; attempt <= attempts; attempt++ {
		response, err := client.Do(request)
		if err != nil {
			return "", err
		}
		body, err := io.ReadAll(response.Body)
		response.Body.Close()
		if err != nil {
			return "", err
		}
		if response.StatusCode == http.StatusOK {
			return strings.TrimSpace(string(body)), nil
		}
		if response.StatusCode != http.StatusServiceUnavailable {
			return "", fmt.Errorf("tokend answered HTTP %d", response.StatusCode)
		}

		wait := retryAfter(response.Header.Get("Retry-After"))
		if attempt < attempts {
			fmt.Fprintf(os.Stderr, "tokend has no token yet (HTTP 503); retrying in %ds\n", wait)
			time.Sleep(time.Duration(wait) * time.Second)
		}
	}
	return "", fmt.Errorf("tokend had no token after %d attempts", attempts)
}

// retryAfter is the wait in whole seconds: 1 when missing, 30 at most.
func retryAfter(value string) int {
	seconds, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil || seconds < 1 {
		return 1
	}
	if seconds > 30 {
		return 30
	}
	return seconds
}

func callGetLists(client *http.Client, apiURL, token string) (string, error) {
	request, err := http.NewRequest(http.MethodPost, apiURL, strings.NewReader(getLists))
	if err != nil {
		return "", err
	}
	request.Header.Set("Authorization", "Bearer "+token)
	request.Header.Set("Content-Type", "text/xml;charset=UTF-8")

	response, err := client.Do(request)
	if err != nil {
		return "", err
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the XML API answered HTTP %d", response.StatusCode)
	}
	body, err := io.ReadAll(response.Body)
	return string(body), err
}

func run() (int, error) {
	tokendURL := os.Getenv("TOKEND_URL")
	if tokendURL == "" {
		tokendURL = "http://127.0.0.1:8439"
	}
	apiURL := os.Getenv("ACOUSTIC_API_URL")
	if apiURL == "" {
		return 2, errors.New("set ACOUSTIC_API_URL to the XML API URL")
	}
	attempts := 5
	if value := os.Getenv("TOKEND_ATTEMPTS"); value != "" {
		parsed, err := strconv.Atoi(value)
		if err != nil {
			return 2, fmt.Errorf("TOKEND_ATTEMPTS: %q is not a number", value)
		}
		attempts = parsed
	}

	// net/http's errors name the method and URL, never the headers.
	client := &http.Client{Timeout: 30 * time.Second}
	token, err := fetchToken(client, tokendURL, attempts)
	if err != nil {
		return 1, err
	}
	answer, err := callGetLists(client, apiURL, token)
	if err != nil {
		return 1, err
	}

	if success.MatchString(answer) {
		fmt.Println("GetLists SUCCESS=true")
		return 0, nil
	}
	reason := "no FaultString"
	if match := fault.FindStringSubmatch(answer); match != nil {
		reason = match[1]
	}
	fmt.Printf("GetLists SUCCESS=false: %s\n", reason)
	return 1, nil
}

func main() {
	status, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(status)
}
