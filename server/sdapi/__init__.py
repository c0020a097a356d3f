"""The A1111 web-UI API (``/sdapi/v1``), a second door into the same App (``serve --sdapi``).

server.py    uvicorn on the App's event loop, beside the websocket
security.py  the websocket's handshake policy on every request, and the body's limit
routes.py    txt2img, img2img, progress, interrupt, skip, extras; errors in A1111's shape
catalog.py   sd-models, options, samplers, schedulers, upscalers, loras, sd-vae, png-info
schema.py    the request bodies (pydantic), unknown fields ignored
translate.py A1111 fields -> the ``Request`` tree, results -> ``images``/``info``/PNG text
samplers.py  A1111 sampler names -> brushlink schedulers
extras.py    upscaling as ``upscale`` jobs
codec.py     base64 in and out, limits checked before decoding, img2img's resize and mask
facade.py    the in-process peer that submits through ``App.submit`` and awaits the answers
"""
