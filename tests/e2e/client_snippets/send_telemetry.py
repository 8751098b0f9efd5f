# The product notes' Python client (shared/seeds/product-notes.txt), verbatim but for the indentation
# the notes lost. The test swaps the base URL for the local gateway's and runs it as is.
import requests
def send_telemetry(payload: dict, api_key: str):
    if not api_key:
        return
    try:
        res = requests.post(
            "https://api.opsmeter.io/v1/ingest/llm-request",
            json=payload,
            headers={"X-API-Key": api_key},
            timeout=0.6,
        )
        if res.status_code == 429:
            retry_after = int(res.headers.get("Retry-After", "1"))
            print(f"Telemetry throttled, retry after {retry_after}s")
            return
        if res.status_code == 402:
            print("Telemetry paused due to plan/budget policy.")
            return
    except Exception:
        # telemetry must not break your production flow
        pass
