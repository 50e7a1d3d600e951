"""The rule registry as text: ``neurodyn list --rules`` and ``docs/rules.md``."""

from .base import RULES


def rules_text() -> str:
    lines = []
    for name in sorted(RULES):
        cls = RULES[name]
        lines.append(f"{name}: {cls.summary}")
        lines.append(f"  needs at least {cls.min_layers} layer(s)")
        for key, text in cls.Options.describe().items():
            lines.append(f"  option {key}: {text}")
        for key, where in cls.Options.derived.items():
            lines.append(f"  from elsewhere: {key} ({where})")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def rules_markdown() -> str:
    """One table: rule, what it is, minimum depth, options with defaults."""
    lines = [
        "| rule | what it is | layers | options (default) |",
        "|---|---|---|---|",
    ]
    for name in sorted(RULES):
        cls = RULES[name]
        opts = "<br>".join(f"`{k}`: {v}".replace("|", "\\|") for k, v in cls.Options.describe().items())
        lines.append(f"| `{name}` | {cls.summary.replace('|', '/')} | >= {cls.min_layers} | {opts} |")
    return "\n".join(lines) + "\n"
