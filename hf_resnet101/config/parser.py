"""`HfArgumentParser` with `--config FILE.yaml`: the file gives defaults, command-line flags win."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import yaml
from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

from ..errors import UsageError, did_you_mean_path


def accept_bare_flags_for_unset_booleans(parser: HfArgumentParser) -> None:
    """`--hub_private_repo` alone means True, as every other yes/no option does: HfArgumentParser requires a value
    for a yes/no option whose default is None (`--hub_private_repo: expected one argument`), while `hf-resnet101
    push --hub_private_repo` takes it bare."""
    for action in parser._actions:
        if action.type is string_to_bool and action.nargs is None and action.option_strings:
            action.nargs, action.const = "?", True


class ConfigParser(HfArgumentParser):
    """Parses dataclass arguments from the command line, optionally on top of a YAML file.

    Values in the YAML file become the parser's defaults, so any flag given on the command line overrides them.
    A key of the YAML file that names no option is an error, as is a file that does not hold a mapping.
    After parsing, `explicit_options` maps each option the user gave to "command line" or "config file", so
    presets can fill in only what the user left open. `check_given`, if set, sees the values the user gave
    (option name -> value) before the dataclasses are built, whose `__post_init__` may change them.
    """

    explicit_options: dict[str, str]

    def __init__(
        self,
        dataclass_types,
        short_help_options: tuple[str, ...] = (),
        check_given: Callable[[dict[str, object]], None] | None = None,
        **kwargs,
    ):
        # Abbreviations would take `--learning_rat` as `--learning_rate` and hide typos: every flag is spelt out.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(dataclass_types, **kwargs)
        accept_bare_flags_for_unset_booleans(self)
        self.short_help_options = short_help_options
        self.check_given = check_given
        self.add_argument(
            "--config", metavar="FILE.yaml", default=argparse.SUPPRESS, help="YAML file of options; flags given win."
        )
        self.add_argument(
            "--help_all", action=_FullHelpAction, help="Show every option, including all of TrainingArguments'."
        )

    def format_help(self) -> str:
        """The package's options and the common training options, one line each; --help_all gives the rest."""
        if not self.short_help_options:
            return super().format_help()
        return render_short_help(self.description or "", self._option_string_actions, self.short_help_options)

    def parse_args_and_config(self, args: list[str] | None = None) -> tuple:
        args = list(sys.argv[1:] if args is None else args)
        config_path, args = _pop_config_flag(args)
        self.explicit_options = {}
        if config_path is not None:
            values = load_yaml_config(config_path, self.known_option_names())
            actions = {action.dest: action for action in self._actions}
            values = {key: config_value(key, value, actions[key]) for key, value in values.items()}
            self.set_defaults(**values)
            self.explicit_options.update(dict.fromkeys(values, "config file"))
            self._drop_required_given_by_config()
        namespace, unknown = self.parse_known_args(args)
        check_unknown_flags(unknown, self._option_string_actions)
        self.explicit_options.update(
            dict.fromkeys(command_line_option_names(args, self._option_string_actions), "command line")
        )
        if self.check_given is not None:
            self.check_given({name: getattr(namespace, name) for name in self.explicit_options})
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


def command_line_option_names(args: list[str], actions: dict[str, argparse.Action]) -> list[str]:
    """Options given as flags, by the field each sets (`--name value`, `--name=value`, `--no_name`, `--name-x`).

    Going through the parser's own table of flags means every spelling it accepts is attributed to the option
    it sets, so a preset never replaces a value the user typed.
    """
    names = []
    for arg in args:
        action = actions.get(arg.split("=", 1)[0]) if arg.startswith("--") else None
        if action is not None and action.dest not in ("help", "help_all", "config"):
            names.append(action.dest)
    return names


# Names other training scripts (timm's train.py, common tutorials) give options this one names otherwise, which
# spelling alone would not match (--lr is closest to --help).
OTHER_SCRIPTS_NAMES = {
    "--lr": "--learning_rate",
    "--batch_size": "--per_device_train_batch_size",
    "--bs": "--per_device_train_batch_size",
    "--train_batch_size": "--per_device_train_batch_size",
    "--eval_batch_size": "--per_device_eval_batch_size",
    "--epochs": "--num_train_epochs",
    "--num_epochs": "--num_train_epochs",
    "--wd": "--weight_decay",
    "--data_dir": "--train_dir",
    "--val_dir": "--validation_dir",
    "--model": "--model_name_or_path",
    "--output": "--output_dir",
    "--warmup_epochs": "--warmup_ratio",
    "--validation_split": "--train_val_split",
    "--val_split": "--train_val_split",
    "--val-split": "--train_val_split",
}


def suggested_option(flag: str, known: list[str]) -> str | None:
    """The option of `known` (`--name` each) that `flag` most likely meant: its name in other scripts, or the
    closest spelling; None when nothing is close."""
    spelled = "--" + flag.lstrip("-").replace("-", "_")
    if OTHER_SCRIPTS_NAMES.get(spelled) in known:
        return OTHER_SCRIPTS_NAMES[spelled]
    close = difflib.get_close_matches(spelled, known, 1, 0.6)
    return close[0] if close else None


def check_unknown_flags(unknown: list[str], actions: dict[str, argparse.Action]) -> None:
    """Stops on a flag the parser does not know, suggesting the closest real one."""
    flags = [arg.split("=", 1)[0] for arg in unknown if arg.startswith("-")]
    if not flags and unknown:
        raise UsageError(f"Unexpected argument(s): {' '.join(unknown)}. Options are given as --name value.")
    if not flags:
        return
    known = [option for option in actions if option.startswith("--") and "-" not in option[2:]]
    messages = []
    for flag in flags:
        close = suggested_option(flag, known)
        messages.append(f"{flag} (did you mean {close}?)" if close else flag)
    raise UsageError(f"Unknown option(s): {', '.join(messages)}. Run with --help to see the options.")


def render_short_help(description: str, actions: dict[str, argparse.Action], names: tuple[str, ...]) -> str:
    """One line per option in `names` (first sentence of its help, default shown), with a pointer to --help_all."""
    lines = [description.strip(), "", "options (--help_all lists every TrainingArguments option):"]
    for name in names:
        action = actions.get(f"--{name}")
        if action is None:  # an option this transformers version lacks
            continue
        text = (action.help or "").split(". ")[0].rstrip(".")
        default, shown = action.default, ""
        if default not in (None, False, "", argparse.SUPPRESS) and name not in ("help", "help_all"):
            shown = f" (default: {getattr(default, 'value', default)})"
        # The default always shows: a long description is cut short before it.
        lines.append(f"  --{name:<30} " + textwrap.shorten(text, 119 - 33 - len(shown), placeholder="...") + shown)
    return "\n".join(lines) + "\n"


class _FullHelpAction(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser._print_message(argparse.ArgumentParser.format_help(parser), sys.stdout)
        parser.exit()


def _pop_config_flag(args: list[str]) -> tuple[str | None, list[str]]:
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(args)
    return known.config, rest


def load_yaml_config(path: str | Path, known_names: set[str]) -> dict:
    """Reads a YAML config and checks every key names an option."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"Config file {path} does not exist.{did_you_mean_path(path)}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise UsageError(f"Config file {path} is not valid YAML: {error}") from error
    if not isinstance(values, dict):
        raise UsageError(f"Config file {path} must hold a mapping of option names to values.")
    unknown = sorted(set(values) - known_names)
    if unknown:
        known = [f"--{name}" for name in known_names]
        named = []
        for key in unknown:
            close = suggested_option(f"--{key}", known)
            named.append(f"{key} (did you mean {close[2:]}?)" if close else key)
        raise UsageError(
            f"Config file {path} has unknown option(s): {', '.join(named)}. "
            "Keys must be option names as in --help (e.g. learning_rate, per_device_train_batch_size)."
        )
    return values


def takes_bool(action: argparse.Action) -> bool:
    """A flag (`--dedupe`, `--no_channels_last`) or an option whose values are read as true or false."""
    return action.nargs == 0 or getattr(action.type, "__name__", "") == "string_to_bool"


def config_value(key: str, value, action: argparse.Action):
    """A YAML config's value checked as the command line's would be: the option's type and choices apply to it.

    argparse converts only string defaults, so a YAML number, true/false or null would otherwise reach the run
    unchecked (`per_device_train_batch_size: 8.7` failing at the first step, `eval_strategy: no`, which YAML reads
    as false). Strings are left for argparse to convert; other values are returned converted.

    Raises:
        UsageError: naming the key, the value and what the option takes.
    """
    if value is None:
        if action.default is None:
            return None
        raise UsageError(f"Config key {key} has no value (null): give one, or leave the key out for its default.")
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        if action.nargs in ("+", "*"):
            return [config_value(key, item, action) for item in value]
        if action.type in (int, float):
            raise UsageError(f"Config key {key} takes one number, got a list: {value}.")
        return value  # options such as report_to take a list as such
    if isinstance(value, bool) and not takes_bool(action):
        raise UsageError(
            f"Config key {key}: YAML reads an unquoted yes, no, on, off, true or false as {str(value).lower()}, "
            f'which {key} does not take. Put the value in quotes ({key}: "no").'
        )
    if isinstance(value, str) and action.type not in (None, str):
        try:  # argparse converts string defaults itself, but its error would not say the value came from here
            action.type(value)
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            kind = getattr(action.type, "__name__", "value")
            raise UsageError(f"Config key {key}: {value!r} is not a valid {kind}.") from None
    if isinstance(value, bool) or action.type is None or isinstance(value, str):
        return value  # argparse converts (and checks) string defaults itself
    try:
        converted = action.type(str(value))
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        kind = getattr(action.type, "__name__", "value")
        raise UsageError(f"Config key {key}: {value!r} is not a valid {kind}.") from None
    if action.choices and converted not in action.choices:
        raise UsageError(f"Config key {key}: {value!r} is not one of {', '.join(map(str, action.choices))}.")
    return converted
