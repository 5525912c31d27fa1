"""A quick bot: one handler answers mentions and DMs on every configured network.

Run it against the sandboxes of the installed adapters, or against real accounts
whose settings are in omnichannel.toml or OMNICHANNEL_<NETWORK>_<SETTING> variables:

    python examples/quickbot.py --sandbox --until-idle
    python examples/quickbot.py

Ctrl+C or SIGTERM stops it cleanly and prints what this run did.
"""

from omnichannel import MessageReceived
from omnichannel.bot import Bot
from omnichannel.errors import DuplicateReply, WindowClosed
from omnichannel.hub import Context
from omnichannel.policy import AutoSend

bot = Bot("quickbot", policy=AutoSend())
UPSET = ("🙄", "😡", "🤬", "worst", "still waiting", "refund", "broken", "thanks for nothing")


@bot.on(MessageReceived)
async def answer(event: MessageReceived, ctx: Context) -> None:
    message = event.message
    name = message.author.display_name or message.author.handle or "there"
    text = message.text.casefold()
    try:
        if any(sign in text for sign in UPSET):  # sarcasm too: "thanks a lot... 🙄"
            await ctx.draft(f"{name}, we're so sorry. A teammate is on it now.", note="complaint")
        elif "thank" in text:
            await ctx.reply(f"You're welcome, {name}! Glad we could help 💙")
        elif "?" in text and not message.is_private:  # personal details belong in private
            await ctx.reply_privately(f"Hi {name}, let's sort this out here in private.")
        else:
            await ctx.reply(f"Hi {name}, thanks for writing! We'll get back to you shortly.")
    except DuplicateReply:  # these exact words already went to someone else today
        await ctx.draft(f"Hi {name}, thanks for your message!", note="would repeat an answer")
    except WindowClosed:  # too late for a bot (Meta: 24 hours); a human may still answer
        await ctx.draft(f"Hi {name}, sorry for the wait! How can we help?", note="window closed")


if __name__ == "__main__":
    raise SystemExit(bot.main())
