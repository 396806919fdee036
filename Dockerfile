# The callcenter backend image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY callcenter ./callcenter
COPY ivr ./ivr
COPY media ./media
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/callcenter callcenter \
    && mkdir -p /var/lib/callcenter && chown callcenter /var/lib/callcenter
USER callcenter
ENV CALLCENTER_DATA_DIR=/var/lib/callcenter CALLCENTER_HTTP_HOST=0.0.0.0
EXPOSE 8080 4573
CMD ["callcenter", "serve"]
