"""The baseline for one-shot latency: the least a Python script can do to stream a reply with the
openai SDK and print it."""

import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1], api_key="x")
stream = client.chat.completions.create(model=sys.argv[2], messages=[{"role": "user", "content": sys.argv[3]}],
                                        stream=True)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        sys.stdout.write(chunk.choices[0].delta.content)
sys.stdout.write("\n")
