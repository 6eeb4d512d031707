"""The API tab: copy-ready examples for the OpenAI SDK, curl and gradio_client at the address in use."""

from __future__ import annotations

import gradio as gr


def base_url(request: gr.Request | None, fallback: str) -> str:
    """The address the browser reached the studio at: the local one, or the share link."""
    if request is None:
        return fallback
    headers = request.headers
    host = headers.get("x-forwarded-host") or headers.get("host")
    if not host:
        return fallback
    proto = headers.get("x-forwarded-proto") or ("https" if host.endswith(".gradio.live") else "http")
    return f"{proto.split(',')[0].strip()}://{host}"


def examples(base: str, model: str, voice_id: str | None) -> str:
    """Markdown with the three examples filled in for `base`."""
    voice = voice_id or "alloy"  # OpenAI voice names pick the model's built-in voice
    return f"""Address in use: **{base}** · interactive HTTP API docs at [{base}/docs]({base}/docs)

#### OpenAI Python SDK (the HTTP API's OpenAI-compatible speech route)
```python
from openai import OpenAI

client = OpenAI(base_url="{base}/v1", api_key="local")  # or the key the studio was started with (--api-key)
with client.audio.speech.with_streaming_response.create(
    model="{model}", voice="{voice}", input="Hello from Chatterbox Studio.", response_format="mp3",
) as response:
    response.stream_to_file("hello.mp3")
```

#### curl
```bash
curl -s {base}/v1/audio/speech -H "Content-Type: application/json" \\
  -H "Authorization: Bearer ${{CHATTERBOX_API_KEY:-local}}" \\
  -d '{{"model": "{model}", "voice": "{voice}", "input": "Hello from Chatterbox Studio.", "response_format": "mp3"}}' \\
  -o hello.mp3
```

#### gradio_client (this page's own endpoints: /synthesize, /voices, /presets)
```python
from gradio_client import Client, handle_file

client = Client("{base}")
path, captions = client.predict(
    text="Hello from Chatterbox Studio.",
    reference=handle_file("my_voice.wav"),  # or reference=None, voice_id="<a saved voice id>"
    exaggeration=0.5, cfg_weight=0.5, seed=42, output_format="mp3",
    captions=True,  # also an .srt and a .vtt file, a cue per sentence (False: captions is None)
    api_name="/synthesize",
)
print(path, captions)  # the audio file and the caption files, downloaded
print(client.predict(api_name="/voices"), client.predict(api_name="/presets"))
```
"""
