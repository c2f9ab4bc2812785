"""kombu's filesystem transport, safe with several processes on one folder: the embedded broker of `make run`.

kombu 5.7's transport (kombu/transport/filesystem.py) has races that kill or starve a worker:
- a producer creates a message file under its final name and then writes into it, so a consumer polling the folder
  can take it half-written and die with "Unrecoverable error: JSONDecodeError";
- a consumer claims a message with shutil.move into the system temp folder (a copy and a delete when that is another
  file system), so two consumers can both run one message, or read a file the other one is rewriting;
- binding a queue opens the exchange's control file with "wb" before locking it, so processes starting together
  (web workers, the worker, beat) empty it under each other's reads and leave it as invalid JSON.

Here a message is written under a temporary name that no consumer lists and renamed into place; a consumer claims it
with one rename on the same file system, which exactly one consumer wins; a file that still cannot be decoded is
moved aside and logged instead of raising; the control file is only read and rewritten under its lock.
project/celery.py makes `filesystem://` mean this transport, so CELERY_BROKER_URL stays the same.
"""

import logging
import os
import uuid
from contextlib import suppress
from pathlib import Path
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Write the message beside the queue under a dotted name (never listed as a message), then rename it in."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        temporary = os.path.join(self.data_folder_out, f".{name}.tmp")
        try:
            with open(temporary, "xb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, final)
        except OSError as exc:
            with suppress(OSError):
                os.remove(temporary)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue):
        """The oldest message of `queue` that this consumer manages to claim."""
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.claimed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except FileNotFoundError:
                continue  # another consumer claimed it first
            except OSError as exc:
                raise ChannelError(f"Cannot claim file {name!r} from queue.") from exc
            try:
                with open(claimed, "rb") as file:
                    raw = file.read()
            except OSError as exc:
                raise ChannelError(f"Cannot read file {claimed!r} from queue.") from exc
            try:
                payload = loads(bytes_to_str(raw))
                if not isinstance(payload, dict) or not isinstance(payload.get("properties"), dict):
                    raise ValueError("not a kombu message")
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError too
                self._set_aside(claimed, name, exc)
                continue
            if self.store_processed:
                os.replace(claimed, os.path.join(self.processed_folder, name))
            else:
                os.remove(claimed)
            return payload
        raise Empty()

    def _set_aside(self, claimed: str, name: str, error: Exception) -> None:
        bad = os.path.join(self.bad_folder, name)
        try:
            os.replace(claimed, bad)
        except OSError:
            bad = claimed  # left where it was claimed: no consumer lists that folder either
        logger.error("Skipped a broker message that cannot be decoded (%s); it was moved to %s", error, bad)

    def get_table(self, exchange):
        file = self._exchange_file(exchange)
        try:
            with file.open("rb") as handle:
                filesystem.lock(handle, filesystem.LOCK_SH)
                try:
                    return self._read_table(handle, file)
                finally:
                    filesystem.unlock(handle)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_table(exchange, lambda table: table if binding in table else [binding, *table])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        virtual.Channel._delete(self, queue)  # purges the queue's messages
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_table(exchange, lambda table: [entry for entry in table if entry != binding])

    def _update_table(self, exchange, change) -> None:
        """Rewrite an exchange's bindings under an exclusive lock, creating the file without ever emptying it."""
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        try:
            handle = os.fdopen(os.open(file, os.O_RDWR | os.O_CREAT, 0o644), "r+b", buffering=0)
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        with handle:
            filesystem.lock(handle, filesystem.LOCK_EX)
            try:
                table = self._read_table(handle, file)
                changed = change(table)
                if changed != table:
                    handle.seek(0)
                    handle.write(str_to_bytes(dumps(changed)))
                    handle.truncate()
            finally:
                filesystem.unlock(handle)

    @staticmethod
    def _read_table(handle, file: Path) -> list:
        raw = handle.read()
        if not raw.strip():
            return []  # just created by a binder that has not written it yet
        try:
            return [filesystem.exchange_queue_t(*entry) for entry in loads(bytes_to_str(raw))]
        except (ValueError, TypeError) as exc:
            logger.error(
                "The broker's bindings file %s cannot be decoded (%s); it is rebuilt as queues bind", file, exc
            )
            return []

    @cached_property
    def claimed_folder(self) -> str:
        return self._folder("claimed_folder", "claimed")

    @cached_property
    def bad_folder(self) -> str:
        return self._folder("bad_folder", "bad")

    def _folder(self, option: str, default_name: str) -> str:
        """A folder beside the queue folder by default: on the same file system, so a rename is atomic."""
        default = os.path.join(os.path.dirname(os.path.abspath(self.data_folder_in)), default_name)
        folder = self.transport_options.get(option) or default
        os.makedirs(folder, exist_ok=True)
        return folder


class Transport(filesystem.Transport):
    Channel = Channel
