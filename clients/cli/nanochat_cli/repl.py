"""`nanochat chat`: one-shot prompt mode and the interactive REPL, both streaming the reply as
it is generated (Chat.Stream). In the REPL a server-side session carries the conversation
(--ephemeral keeps it in the client instead); Ctrl-C during a reply stops that reply, Ctrl-C at
the prompt clears the line, Ctrl-D or /quit leaves."""
import nanochat_client as nc

HELP = """commands:
  /quit, /exit      leave (also Ctrl-D)
  /new              start a new conversation
  /session          show the session id
  /system TEXT      system prompt for the next new conversation
  /set KEY VALUE    sampling option: temperature, top_k, top_p, min_p, max_tokens, seed
  /help             this text
"""
SETTABLE = {"temperature": float, "top_k": int, "top_p": float, "min_p": float,
            "max_tokens": int, "seed": int}


class Conversation:
    def __init__(self, client, opts, system=None, ephemeral=False, session_id=None):
        self.client = client
        self.opts = dict(opts)
        self.system = system
        self.ephemeral = ephemeral
        self.session_id = session_id
        self.messages = []     # kept locally when there is no server-side session

    def reset(self):
        self.session_id = None
        self.messages = []

    def turn(self, text, out):
        """Streams one reply to out; returns the ChatStream (done is None when interrupted)."""
        user = {"role": "user", "content": text}
        opts = dict(self.opts)
        if self.session_id:
            msgs = [user]
            opts["session_id"] = self.session_id
            system = None
        else:
            msgs = self.messages + [user]
            system = self.system if not self.messages else None
        if self.ephemeral:
            opts["ephemeral"] = True
        stream = self.client.chat(msgs, system=system, **opts)
        try:
            for piece in stream:
                out.write(piece)
                out.flush()
        except KeyboardInterrupt:
            stream.cancel()
            out.write(" [stopped]\n")
            out.flush()
            return stream
        out.write("\n")
        out.flush()
        if stream.done is not None:
            if stream.session_id and not self.ephemeral:
                self.session_id = stream.session_id
            else:
                if system:
                    self.messages.append({"role": "system", "content": system})
                self.messages += [user, {"role": "assistant", "content": stream.text}]
        return stream


def one_shot(conv, prompt, out):
    """Prints the reply; raises the typed error on failure."""
    conv.turn(prompt, out)
    return 0


def repl(conv, out, err, input_fn=input):
    try:
        import readline  # noqa: F401  (line editing and history at the prompt)
    except ImportError:
        pass
    out.write("nanochat chat: type a message, /help for commands, /quit to leave\n")
    out.flush()
    while True:
        try:
            line = input_fn("you> ")
        except EOFError:
            out.write("\n")
            return 0
        except KeyboardInterrupt:
            out.write("\n")
            continue
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            cmd, _, arg = line.partition(" ")
            if cmd in ("/quit", "/exit"):
                return 0
            if cmd == "/help":
                out.write(HELP)
            elif cmd == "/new":
                conv.reset()
                out.write("new conversation\n")
            elif cmd == "/session":
                out.write("session: %s\n" % (conv.session_id or "(none yet)"))
            elif cmd == "/system":
                conv.system = arg or None
                conv.reset()
                out.write("system prompt set; new conversation\n")
            elif cmd == "/set":
                key, _, val = arg.partition(" ")
                if key not in SETTABLE:
                    err.write("error: /set KEY VALUE with KEY one of %s\n" % ", ".join(SETTABLE))
                else:
                    try:
                        conv.opts[key] = SETTABLE[key](val)
                        out.write("%s = %s\n" % (key, conv.opts[key]))
                    except ValueError:
                        err.write("error: %s needs a number\n" % key)
            else:
                err.write("error: unknown command %s (/help)\n" % cmd)
            out.flush()
            err.flush()
            continue
        out.write("nanochat> ")
        out.flush()
        try:
            conv.turn(line, out)
        except nc.NanochatError as e:
            out.write("\n")
            out.flush()
            err.write("error: %s\n" % e)
            err.flush()
