FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

RUN useradd --system --home /app holdfast
COPY . .
RUN pip install -c constraints.txt -e . && mkdir -p /app/data && chown -R holdfast /app

USER holdfast
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
# Behind a reverse proxy, add: --proxy-headers --forwarded-allow-ips <the proxy's address>
CMD ["holdfast", "serve", "--host", "0.0.0.0", "--port", "8000"]
