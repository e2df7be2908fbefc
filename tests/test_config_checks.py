"""``aggcore validate`` finds what ``aggcore run`` would: bad log levels, keys written twice,
pairs listed twice, a misspelled environment override; and it warns about configs that load
but read nothing, the same way ``run`` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggcore.cli import main
from aggcore.config import load_config
from aggcore.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def validate(path: Path, capsys: pytest.CaptureFixture[str], **env: str) -> tuple[int, str, str]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_unknown_log_level_fails_validate_with_its_key_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "exchanges: {kraken: {trading_pairs: [BTC/USD]}}\nlogging: {level: LOUD}\n")
    code, _, err = validate(path, capsys)
    assert code == 2
    assert f"{path}: logging.level: unknown log level: use DEBUG, INFO, WARNING, ERROR, CRITICAL" in err
    # and run stops at the same place, before starting anything
    assert main(["run", str(path)]) == 2
    assert "logging.level: unknown log level" in capsys.readouterr().err
    config = load_config(write(tmp_path, "exchanges: {kraken: {trading_pairs: [BTC/USD]}}\nlogging: {level: warn}\n"))
    assert config.logging.level == "WARNING"


def test_a_key_written_twice_names_both_lines_and_other_errors_still_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        "exchanges:\n  kraken:\n    trading_pairs: [BTC/USD]\n    enabled: true\n    enabled: false\nlogging:\n  level: LOUD\n",
    )
    code, _, err = validate(path, capsys)
    assert code == 2
    assert f"{path}: exchanges.kraken.enabled: duplicate key: written at line 4 and again at line 5" in err
    assert "logging.level" in err and "2 errors" in err


def test_a_key_written_twice_in_json_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '{"exchanges": {"kraken": {"trading_pairs": ["BTC/USD"]}}, "exchanges": {}}', "config.json")
    code, _, err = validate(path, capsys)
    assert code == 2 and "exchanges: duplicate key" in err


def test_a_pair_listed_twice_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "exchanges: {kraken: {trading_pairs: [BTC/USD, ETH/USD, btc/usd]}}\n")
    code, _, err = validate(path, capsys)
    assert code == 2
    assert "exchanges.kraken.trading_pairs[2]: duplicate pair 'btc/usd': already listed at trading_pairs[0]" in err


def test_an_empty_config_and_an_exchange_without_pairs_are_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = validate(write(tmp_path, ""), capsys)
    assert code == 0 and "OK (1 warning)" in out
    assert "exchanges: warning: no enabled exchange" in err
    code, out, err = validate(write(tmp_path, "exchanges: {kraken: {trading_pairs: []}}\n"), capsys)
    assert code == 0
    assert "exchanges.kraken.trading_pairs: warning: no trading pairs" in err
    warnings: list[tuple[str, str]] = []
    load_config({"exchanges": {"kraken": {"enabled": False}}}, warnings=warnings)
    assert [loc for loc, _ in warnings] == ["exchanges"]


def test_a_misspelled_environment_override_names_the_variable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "exchanges: {kraken: {trading_pairs: [BTC/USD]}}\n")
    code, _, err = validate(
        path, capsys, AGGCORE_AGREGATION__MAX_PRICE_LEVELS="3", AGGCORE_EXCHANGES__KRAKEN__ENABLD="false"
    )
    assert code == 2
    assert "agregation: unknown section (did you mean 'aggregation'?)" in err
    assert "(set by AGGCORE_AGREGATION__MAX_PRICE_LEVELS)" in err
    assert "exchanges.kraken.enabld: unknown key (did you mean 'enabled'?)" in err
    assert "(set by AGGCORE_EXCHANGES__KRAKEN__ENABLD)" in err
    with pytest.raises(ConfigError):
        load_config(path, environ={"AGGCORE_LOGGING__LEVEL": "LOUD"})
