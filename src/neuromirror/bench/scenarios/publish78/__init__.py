"""The bench's scenarios of issue 78 (published as the field publishes): :mod:`.github` times ``publish --to
github:ORG`` against the project's GitHub stand-in beside a publish into pre-made bare repositories, counting the
API's calls; :mod:`.icechunk_read` exports a pinned Zarr state as an Icechunk repository and reads a slice through
it beside zarr-python over ``neuromirror://`` at a round trip; :mod:`.common` their options and target rows."""
