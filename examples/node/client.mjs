// Asks tokend for the access token, then calls the Acoustic XML API with it.
//
//   ACOUSTIC_API_URL=https://api-campaign-us-1.goacoustic.com/XMLAPI node client.mjs
//
// TOKEND_URL (default http://127.0.0.1:8439) names the daemon and
// TOKEND_ATTEMPTS (default 5) bounds the tries while it has no token yet.
// Node 20 or later: fetch is built in.
import { setTimeout as sleep } from "node:timers/promises";

const GET_LISTS =
  "<Envelope><Body><GetLists>" +
  "<VISIBILITY>1</VISIBILITY><LIST_TYPE>2</LIST_TYPE>" +
  "</GetLists></Body></Envelope>";

async function fetchToken(tokendUrl, attempts) {
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const response = await fetch(`${tokendUrl}/token`, {
      headers: { "Tokend-Request": "1", Accept: "text/plain" },
      signal: AbortSignal.timeout(10_000),
    });
    if (response.ok) return (await response.text()).trim();
    if (response.status !== 503) {
      throw new Error(`tokend answered HTTP ${response.status}`);
    }

    // Whole seconds; 1 when missing, never more than 30.
    const wait = Math.min(Number(response.headers.get("Retry-After")) || 1, 30);
    if (attempt < attempts) {
      console.error(`tokend has no token yet (HTTP 503); retrying in ${wait}s`);
      await sleep(wait * 1000);
    }
  }
  throw new Error(`tokend had no token after ${attempts} attempts`);
}

async function getLists(apiUrl, token) {
  const response = await fetch(apiUrl, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${token}`,
      "Content-Type": "text/xml;charset=UTF-8",
    },
    body: GET_LISTS,
    signal: AbortSignal.timeout(30_000),
  });
  if (!response.ok) {
    throw new Error(`the XML API answered HTTP ${response.status}`);
  }
  return response.text();
}

async function main() {
  const tokendUrl = process.env.TOKEND_URL ?? "http://127.0.0.1:8439";
  const apiUrl = process.env.ACOUSTIC_API_URL;
  if (!apiUrl) {
    console.error("set ACOUSTIC_API_URL to the XML API URL");
    return 2;
  }

  const token = await fetchToken(tokendUrl, Number(process.env.TOKEND_ATTEMPTS ?? 5));
  const answer = await getLists(apiUrl, token);

  if (/<SUCCESS>\s*true\s*<\/SUCCESS>/i.test(answer)) {
    console.log("GetLists SUCCESS=true");
    return 0;
  }
  const fault = answer.match(/<FaultString>([\s\S]*?)<\/FaultString>/);
  console.log(`GetLists SUCCESS=false: ${fault ? fault[1] : "no FaultString"}`);
  return 1;
}

// fetch's own errors ("fetch failed") name the cause, never the headers.
main().then(
  (status) => process.exit(status),
  (error) => {
    console.error(error.cause ? `${error.message}: ${error.cause.message}` : error.message);
    process.exit(1);
  },
);
