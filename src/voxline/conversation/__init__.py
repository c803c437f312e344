"""One live conversation: turn-taking, interruption, reminders, limits and latency marks.

A transport adapter (browser WebSocket, Retell audio socket, later WebRTC/SIP) does only this::

    config = ConversationConfig.from_agent(agent, input_rate, output_rate, dynamic_variables)
    conversation = Conversation(config, vad=vad, asr=asr, tts=tts, llm=engine, clock=clock,
                                sink=my_sink, call=call_object)
    result = await conversation.run(frames)   # frames: async iterable of PCM16LE mono bytes
    # elsewhere, any time: conversation.request_end("manual_stopped"); conversation.update_agent({...})

`my_sink` implements `OutputSink` (send_audio / send_event / clear). `result` carries the
disconnection_reason, the transcript (cut to what was played), transcript_with_tool_calls and
per-turn latency marks. The engine knows nothing about HTTP, SQL or the transport.
"""

from voxline.conversation.config import ConversationConfig
from voxline.conversation.engine import Conversation
from voxline.conversation.marks import MARK_ORDER, TurnMarks
from voxline.conversation.output import OutputSink
from voxline.conversation.result import ConversationResult

__all__ = ["MARK_ORDER", "Conversation", "ConversationConfig", "ConversationResult", "OutputSink", "TurnMarks"]
