# The gpuplan REST API and web page. No torch, no vLLM: the estimate is pure Python.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && rm -rf /app/src /app/build

# Hub lookups for models outside the catalog need network (and HF_TOKEN for gated models);
# run with -e HF_HUB_OFFLINE=1 to keep the server to its catalog.
RUN useradd --create-home --uid 10001 gpuplan
USER gpuplan
ENV HF_HOME=/home/gpuplan/.cache/huggingface
EXPOSE 8000
CMD ["gpuplan", "serve", "--host", "0.0.0.0", "--port", "8000"]
