"""`HfArgumentParser` with `--config FILE.yaml`: the file gives defaults, command-line flags win."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from .errors import UsageError


class ConfigParser(HfArgumentParser):
    """Parses dataclass arguments from the command line, optionally on top of a YAML file.

    Values in the YAML file become the parser's defaults, so any flag given on the command line overrides them.
    A key of the YAML file that names no option is an error, as is a file that does not hold a mapping.
    After parsing, `explicit_options` maps each option the user gave to "command line" or "config file", so
    presets can fill in only what the user left open.
    """

    explicit_options: dict[str, str]

    def parse_args_and_config(self, args: list[str] | None = None) -> tuple:
        args = list(sys.argv[1:] if args is None else args)
        config_path, args = _pop_config_flag(args)
        self.explicit_options = {}
        if config_path is not None:
            values = load_yaml_config(config_path, self.known_option_names())
            self.set_defaults(**values)
            self.explicit_options.update(dict.fromkeys(values, "config file"))
            self._drop_required_given_by_config()
        self.explicit_options.update(dict.fromkeys(command_line_option_names(args), "command line"))
        try:
            return self.parse_args_into_dataclasses(args=args, look_for_args_file=False)
        except UsageError:
            raise
        except (TypeError, ValueError) as error:
            raise UsageError(str(error)) from error

    def known_option_names(self) -> set[str]:
        names = set()
        for dtype in self.dataclass_types:
            names.update(f.name for f in dataclasses.fields(dtype) if f.init)
        return names

    def _drop_required_given_by_config(self) -> None:
        for action in self._actions:
            if action.required and self.get_default(action.dest) is not None:
                action.required = False

    def error(self, message: str):
        # argparse would print usage and exit; raising keeps the message and lets entry points format it.
        raise UsageError(f"{message}. Run with --help to see the options.")


def command_line_option_names(args: list[str]) -> list[str]:
    """Option names given as flags (`--name value`, `--name=value`, `--no_name`), with dashes as underscores."""
    names = []
    for arg in args:
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0].replace("-", "_")
            names += [name, name.removeprefix("no_")] if name.startswith("no_") else [name]
    return names


def _pop_config_flag(args: list[str]) -> tuple[str | None, list[str]]:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(args)
    return known.config, rest


def load_yaml_config(path: str | Path, known_names: set[str]) -> dict:
    """Reads a YAML config and checks every key names an option."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"Config file {path} does not exist.")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise UsageError(f"Config file {path} is not valid YAML: {error}") from error
    if not isinstance(values, dict):
        raise UsageError(f"Config file {path} must hold a mapping of option names to values.")
    unknown = sorted(set(values) - known_names)
    if unknown:
        raise UsageError(
            f"Config file {path} has unknown option(s): {', '.join(unknown)}. "
            "Keys must be option names as in --help (e.g. learning_rate, per_device_train_batch_size)."
        )
    return values
