# custagg in a container: built with the same command CI runs, run as a non-root user.
#
#   docker build -t custagg .
#   docker run --rm -v "$PWD/data:/opt/data:ro" custagg --source /opt/data/transaction.csv --output /tmp/out.csv
#
# Build stage: the toolchain CI uses, and its build command, `cargo build --release --locked`.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked

# Run stage: a slim Debian with only the binary.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin custagg
COPY --from=build /src/target/release/custagg /usr/local/bin/custagg
USER custagg
WORKDIR /opt/data
ENTRYPOINT ["custagg"]
CMD ["--help"]
