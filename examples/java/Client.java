// Asks tokend for the access token, then calls the Acoustic XML API with it.
//
//   ACOUSTIC_API_URL=https://api-campaign-us-1.goacoustic.com/XMLAPI java Client.java
//
// TOKEND_URL (default http://127.0.0.1:8439) names the daemon and
// TOKEND_ATTEMPTS (default 5) bounds the tries while it has no token yet.
// Java 11 or later, run as a single source file; java.net.http only.

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import java.util.regex.Pattern;

public class Client {
    private static final String GET_LISTS =
        "<Envelope><Body><GetLists>"
        + "<VISIBILITY>1</VISIBILITY><LIST_TYPE>2</LIST_TYPE>"
        + "</GetLists></Body></Envelope>";
    private static final Pattern SUCCESS =
        Pattern.compile("<SUCCESS>\\s*true\\s*</SUCCESS>", Pattern.CASE_INSENSITIVE);
    private static final Pattern FAULT =
        Pattern.compile("<FaultString>(.*?)</FaultString>", Pattern.DOTALL);

    private static final HttpClient HTTP = HttpClient.newBuilder()
        .connectTimeout(Duration.ofSeconds(5))
        .build();

    static class Unavailable extends Exception {
        Unavailable(String message) {
            super(message);
        }
    }

    static String fetchToken(String tokendUrl, int attempts)
            throws IOException, InterruptedException, Unavailable {
        HttpRequest request = HttpRequest.newBuilder(URI.create(tokendUrl + "/token"))
            .header("Tokend-Request", "1")
            .header("Accept", "text/plain")
            .timeout(Duration.ofSeconds(10))
            .build();

        for (int attempt = 1; attempt <= attempts; attempt++) {
            HttpResponse<String> response =
                HTTP.send(request, HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() == 200) {
                return response.body().strip();
            }
            if (response.statusCode() != 503) {
                throw new Unavailable("tokend answered HTTP " + response.statusCode());
            }

            long wait = retryAfter(response.headers().firstValue("Retry-After").orElse(""));
            if (attempt < attempts) {
                System.err.printf("tokend has no token yet (HTTP 503); retrying in %ds%n", wait);
                Thread.sleep(wait * 1000);
            }
        }
        throw new Unavailable("tokend had no token after " + attempts + " attempts");
    }

    /** Whole seconds to wait: 1 when missing or unreadable, 30 at most. */
    static long retryAfter(String value) {
        try {
            return Math.min(Math.max(Long.parseLong(value.strip()), 1), 30);
        } catch (NumberFormatException e) {
            return 1;
        }
    }

    static String getLists(String apiUrl, String token)
            throws IOException, InterruptedException, Unavailable {
        HttpRequest request = HttpRequest.newBuilder(URI.create(apiUrl))
            .header("Authorization", "Bearer " + token)
            .header("Content-Type", "text/xml;charset=UTF-8")
            .timeout(Duration.ofSeconds(30))
            .POST(HttpRequest.BodyPublishers.ofString(GET_LISTS))
            .build();
        HttpResponse<String> response = HTTP.send(request, HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 200) {
            throw new Unavailable("the XML API answered HTTP " + response.statusCode());
        }
        return response.body();
    }

    public static void main(String[] args) throws InterruptedException {
        Map<String, String> env = System.getenv();
        String tokendUrl = env.getOrDefault("TOKEND_URL", "http://127.0.0.1:8439");
        String apiUrl = env.get("ACOUSTIC_API_URL");
        if (apiUrl == null || apiUrl.isEmpty()) {
            System.err.println("set ACOUSTIC_API_URL to the XML API URL");
            System.exit(2);
        }

        String answer;
        try {
            int attempts = Integer.parseInt(env.getOrDefault("TOKEND_ATTEMPTS", "5"));
            answer = getLists(apiUrl, fetchToken(tokendUrl, attempts));
        } catch (Unavailable | IOException | IllegalArgumentException e) {
            // The exceptions name URLs and statuses, never the request's headers.
            System.err.println(e instanceof Unavailable ? e.getMessage() : "request failed: " + e);
            System.exit(1);
            return;
        }

        if (SUCCESS.matcher(answer).find()) {
            System.out.println("GetLists SUCCESS=true");
            return;
        }
        var fault = FAULT.matcher(answer);
        System.out.println("GetLists SUCCESS=false: "
            + (fault.find() ? fault.group(1) : "no FaultString"));
        System.exit(1);
    }
}
