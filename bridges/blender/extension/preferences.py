"""Add-on preferences: where the server is and the token to present.

Both are empty by default, which means "this machine's server": the URL from the install's
config and the token file the server wrote into ``BRUSHLINK_HOME`` (or the platform's data
folder). A remote server needs both filled in.
"""

from __future__ import annotations

import bpy

from brushlink.plugin import home


class BrushlinkPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    url: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Server URL",
        description="Websocket URL of the brushlink server; empty: this machine's server",
        default="",
    )
    token: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Token",
        description="Access token; empty: read from the brushlink home folder",
        default="",
        subtype="PASSWORD",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "url")
        layout.label(text=f"Empty URL: {home.default_url()}")
        layout.prop(self, "token")
        found = "found" if home.read_token() else "not found (start `brushlink serve` once)"
        layout.label(text=f"Token file in {home.default_home()}: {found}")


def _prefs() -> BrushlinkPreferences | None:
    addon = bpy.context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


def server_url() -> str:
    prefs = _prefs()
    return (prefs.url.strip() if prefs else "") or home.default_url()


def server_token() -> str | None:
    prefs = _prefs()
    return (prefs.token.strip() if prefs else "") or home.read_token()


CLASSES = (BrushlinkPreferences,)
