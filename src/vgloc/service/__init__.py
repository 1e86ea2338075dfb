"""vgloc as a service: an HTTP API and a map page over one Localizer.

:mod:`vgloc.service.app` builds the FastAPI app (``create_app``), with uploads
checked by :mod:`vgloc.service.limits` and requests batched onto the model by
:mod:`vgloc.service.batching`. Run it with ``vgloc serve --index IDX``; see
docs/service.md. FastAPI and uvicorn come with the ``serve`` extra
(``pip install 'vgloc[serve]'``); nothing here is imported by ``import vgloc``.
"""
