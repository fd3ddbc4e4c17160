"""``pulse api``: the real-time moderation API (Perspective-compatible scoring, Discourse webhook).

Registered in :mod:`pulse.cli` as a typer sub-app. ``serve`` runs the server (:mod:`pulse.api.app`);
``key create|list|revoke`` manage API keys, stored hashed in the review store
(``PULSE_REVIEW_STORE_URL``; :mod:`pulse.api.keys`). A key is printed once, at creation.
Exit codes as everywhere in ``pulse``: 0 success, 1 failure, 2 bad input or configuration.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pulse.cli_common import console, fail, settings_or_exit

app = typer.Typer(help="Real-time moderation API: Perspective-compatible scoring and the Discourse webhook.",
                  no_args_is_help=True)  # fmt: skip
key_app = typer.Typer(
    help="API keys (stored hashed in the review store; shown once at creation).", no_args_is_help=True
)
app.add_typer(key_app, name="key")


def _keys() -> Any:
    """The key store on the configured review store, or exit 2 naming the problem (password masked)."""
    from moderation.review_store import ReviewStore, redact_url
    from pulse.api.keys import KeyStore

    settings = settings_or_exit()
    try:
        return KeyStore(ReviewStore.from_settings(settings).engine)
    except ValueError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a connection failure: say where, without the password
        url = redact_url(settings.review_store_url.get_secret_value())
        raise fail(f"cannot open the review store {url}: {type(exc).__name__} (check PULSE_REVIEW_STORE_URL)") from None


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on [env PULSE_API_HOST; default 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [env PULSE_API_PORT; default 8000]")] = None,
    scorer: Annotated[
        str | None, typer.Option(help="auto | lexical | detoxify:NAME | checkpoint:DIR [env PULSE_SCORER]")
    ] = None,
) -> None:
    """Serve comments:analyze (Perspective), its discovery document, /healthz, /docs and /webhooks/discourse."""
    from pulse.api.app import serve as run

    settings = settings_or_exit(api_host=host, api_port=port, scorer=scorer)
    base = f"http://{settings.api_host}:{settings.api_port}"
    webhook = "on" if settings.discourse_webhook_secret is not None else "off (set PULSE_DISCOURSE_WEBHOOK_SECRET)"
    console.print(
        f"Scoring API on [bold]{base}/v1alpha1/comments:analyze[/] (discovery {base}/$discovery/rest?version=v1alpha1, "
        f"docs {base}/docs); Discourse webhook {base}/webhooks/discourse: {webhook}. Ctrl+C stops it."
    )
    run(settings, settings.api_host, settings.api_port)


@key_app.command("create")
def key_create(name: Annotated[str, typer.Argument(help="A name for the client, e.g. coral-talk")]) -> None:
    """Create an API key and print it once (only its SHA-256 is stored)."""
    try:
        key = _keys().create(name)
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print(f"API key [bold]{escape(name)}[/] created. It is shown only now; store it in the client:")
    print(key)


@key_app.command("list")
def key_list() -> None:
    """List the keys: name, first characters, created, revoked."""
    rows = _keys().list()
    table = Table(title="API keys")
    for col in ("name", "starts with", "created (UTC)", "revoked (UTC)"):
        table.add_column(col)
    for k in rows:
        table.add_row(escape(k.name), k.prefix + "…", f"{k.created_at:%Y-%m-%d %H:%M}",
                      f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")  # fmt: skip
    console.print(table if rows else "No API keys yet: pulse api key create NAME")


@key_app.command("revoke")
def key_revoke(name: Annotated[str, typer.Argument(help="The key's name")]) -> None:
    """Revoke a key (running servers refuse it within 5 seconds)."""
    if not _keys().revoke(name):
        raise fail(f"no valid key named {name!r} (pulse api key list shows the keys)")
    console.print(f"API key [bold]{escape(name)}[/] revoked.")
