<?php
// Asks tokend for the access token, then calls the Acoustic XML API with it.
//
//   ACOUSTIC_API_URL=https://api-campaign-us-1.goacoustic.com/XMLAPI php client.php
//
// TOKEND_URL (default http://127.0.0.1:8439) names the daemon and
// TOKEND_ATTEMPTS (default 5) bounds the tries while it has no token yet.
// PHP 8 with its built-in HTTP streams: no extension needed.

declare(strict_types=1);

const GET_LISTS = '<Envelope><Body><GetLists>'
    . '<VISIBILITY>1</VISIBILITY><LIST_TYPE>2</LIST_TYPE>'
    . '</GetLists></Body></Envelope>';

/** One HTTP request: [status, headers with lower-case names, body]. */
function request(string $method, string $url, array $headers, string $body = '', int $timeout = 10): array
{
    if (!preg_match('#^https?://#', $url)) {
        throw new RuntimeException("$url is not an http:// or https:// URL");
    }
    $context = stream_context_create(['http' => [
        'method' => $method,
        'header' => $headers,
        'content' => $body,
        'timeout' => $timeout,
        // Give back 4xx and 5xx answers instead of failing on them.
        'ignore_errors' => true,
    ]]);
    $answer = @file_get_contents($url, false, $context);
    if ($answer === false) {
        throw new RuntimeException("cannot reach $url");
    }

    $lines = function_exists('http_get_last_response_headers')
        ? http_get_last_response_headers()
        : $http_response_header;
    preg_match('#^HTTP/\S+ (\d{3})#', $lines[0], $status);
    $names = [];
    foreach (array_slice($lines, 1) as $line) {
        [$name, $value] = array_pad(explode(':', $line, 2), 2, '');
        $names[strtolower(trim($name))] = trim($value);
    }
    return [(int) $status[1], $names, $answer];
}

function fetch_token(string $tokendUrl, int $attempts): string
{
    for ($attempt = 1; $attempt <= $attempts; $attempt++) {
        [$status, $headers, $body] = request(
            'GET',
            "$tokendUrl/token",
            ['Tokend-Request: 1', 'Accept: text/plain'],
        );
        if ($status === 200) {
            return trim($body);
        }
        if ($status !== 503) {
            throw new RuntimeException("tokend answered HTTP $status");
        }

        // Whole seconds; 1 when missing, never more than 30.
        $wait = min(max((int) ($headers['retry-after'] ?? 1), 1), 30);
        if ($attempt < $attempts) {
            fwrite(STDERR, "tokend has no token yet (HTTP 503); retrying in {$wait}s\n");
            sleep($wait);
        }
    }
    throw new RuntimeException("tokend had no token after $attempts attempts");
}

function get_lists(string $apiUrl, string $token): string
{
    [$status, , $body] = request(
        'POST',
        $apiUrl,
        ["Authorization: Bearer $token", 'Content-Type: text/xml;charset=UTF-8'],
        GET_LISTS,
        30,
    );
    if ($status !== 200) {
        throw new RuntimeException("the XML API answered HTTP $status");
    }
    return $body;
}

$tokendUrl = getenv('TOKEND_URL') ?: 'http://127.0.0.1:8439';
$apiUrl = getenv('ACOUSTIC_API_URL');
if (!$apiUrl) {
    fwrite(STDERR, "set ACOUSTIC_API_URL to the XML API URL\n");
    exit(2);
}

try {
    $token = fetch_token($tokendUrl, (int) (getenv('TOKEND_ATTEMPTS') ?: 5));
    $answer = get_lists($apiUrl, $token);
} catch (RuntimeException $e) {
    fwrite(STDERR, $e->getMessage() . "\n");
    exit(1);
}

if (preg_match('#<SUCCESS>\s*true\s*</SUCCESS>#i', $answer)) {
    echo "GetLists SUCCESS=true\n";
    exit(0);
}
$fault = preg_match('#<FaultString>(.*?)</FaultString>#s', $answer, $match)
    ? $match[1] : 'no FaultString';
echo "GetLists SUCCESS=false: $fault\n";
exit(1);
