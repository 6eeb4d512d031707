"""Who may reach the studio: a loud warning when it is exposed beyond this computer, the API key it then gets unless
told --open, and Gradio's login and file-serving bounds."""

from __future__ import annotations

import secrets
from dataclasses import replace

from settings import Settings

from .auth import key_matches

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def exposure_reasons(settings: Settings) -> list[str]:
    """Why the studio is reachable beyond this computer; empty when it is not."""
    reasons = []
    if settings.share:
        reasons.append("--share publishes it on a public gradio.live link")
    if settings.host not in LOOPBACK_HOSTS:
        reasons.append(f"it listens on {settings.host}, so other machines on the network can reach it")
    return reasons


def exposure_warning(settings: Settings) -> str | None:
    """A loud notice when the studio is reachable beyond this computer, or None when it is not."""
    reasons = exposure_reasons(settings)
    if not reasons:
        return None
    bar = "!" * 78
    guard = ("An API key guards it: the UI asks for it as the password, the API as 'Authorization: Bearer <key>'."
             if settings.api_key else
             "Anyone with the address can synthesize speech in any voice, and upload, use or delete saved voices.")
    return (f"{bar}\nWARNING: the studio is exposed: {'; '.join(reasons)}.\n{guard}\n{wyoming_warning(settings)}"
            f"Share the address only with people you trust; stop the studio when you are done.\n{bar}")


def wyoming_warning(settings: Settings) -> str:
    """The line about the Wyoming server when it listens beyond loopback (its protocol has no key), else ''."""
    if not settings.wyoming or settings.host in LOOPBACK_HOSTS:
        return ""
    return (f"The Wyoming server on {settings.host}:{settings.wyoming_port} has NO authentication (the protocol has "
            f"none): anyone who reaches that port can synthesize speech in any library voice.\n")


def with_key(settings: Settings) -> tuple[Settings, bool]:
    """The settings, with a new random API key when the studio is exposed, has none and was not told --open;
    and whether a key was generated."""
    if settings.api_key or settings.open or not exposure_reasons(settings):
        return settings, False
    return replace(settings, api_key=secrets.token_urlsafe(18)), True


def launch_options(settings: Settings) -> dict:
    """Gradio's login (the API key as password) and the folders its file serving may and may not touch."""
    options = {"allowed_paths": [str(settings.engine.data_dir / "datasets")],
               "blocked_paths": [str(settings.engine.voices_dir)]}
    if settings.api_key:
        options["auth"] = lambda _user, password: key_matches(settings.api_key, password)
        options["auth_message"] = "Enter the studio's API key as the password (any user name)."
    return options
