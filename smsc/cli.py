"""The `smsc` command line."""

import click


@click.group()
def main() -> None:
    """smsc: SMPP server and SMS switch."""
