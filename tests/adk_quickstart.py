"""ADK's documented examples as a user writes them, run with ADK's own ``Runner`` (``python
adk_quickstart.py``): the quickstart's weather and time agent, and the agent-team tutorial's
coordinator that transfers a greeting to its ``greeting_agent``. Each event is printed as one JSON
line. The test runs this file as it is, and a copy whose only change is the ``Runner`` import.
The model is ADK's default Gemini model at ``GOOGLE_GEMINI_BASE_URL`` (the test's fake)."""

from __future__ import annotations

import asyncio
import datetime
import json
from zoneinfo import ZoneInfo

from google.adk.agents import LlmAgent
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types


# --- the quickstart (multi_tool_agent/agent.py) -----------------------------------------------------------
def get_weather(city: str) -> dict:
    """Retrieves the current weather report for a specified city.

    Args:
        city (str): The name of the city for which to retrieve the weather report.

    Returns:
        dict: status and result or error msg.
    """
    if city.lower() == "new york":
        return {
            "status": "success",
            "report": "The weather in New York is sunny with a temperature of 25 degrees Celsius (77 degrees Fahrenheit).",
        }
    return {"status": "error", "error_message": f"Weather information for '{city}' is not available."}


def get_current_time(city: str) -> dict:
    """Returns the current time in a specified city.

    Args:
        city (str): The name of the city for which to retrieve the current time.

    Returns:
        dict: status and result or error msg.
    """
    if city.lower() == "new york":
        tz_identifier = "America/New_York"
    else:
        return {"status": "error", "error_message": f"Sorry, I don't have timezone information for {city}."}
    tz = ZoneInfo(tz_identifier)
    now = datetime.datetime.now(tz)
    report = f"The current time in {city} is {now.strftime('%Y-%m-%d %H:%M:%S %Z%z')}"
    return {"status": "success", "report": report}


root_agent = LlmAgent(
    name="weather_time_agent",
    model="gemini-2.0-flash",
    description="Agent to answer questions about the time and weather in a city.",
    instruction="You are a helpful agent who can answer questions about the time and weather in a city.",
    tools=[get_weather, get_current_time],
)


# --- the agent team tutorial: delegation to a sub-agent ------------------------------------------------
def say_hello(name: str | None = None) -> str:
    """Provides a simple greeting. If a name is provided, it will be used.

    Args:
        name (str, optional): The name of the person to greet. Defaults to a generic greeting if not provided.

    Returns:
        str: A friendly greeting message.
    """
    return f"Hello, {name}!" if name else "Hello there!"


greeting_agent = LlmAgent(
    model="gemini-2.0-flash",
    name="greeting_agent",
    instruction="You are the Greeting Agent. Your ONLY task is to provide a friendly greeting to the user."
    " Use the 'say_hello' tool to generate the greeting.",
    description="Handles simple greetings and hellos using the 'say_hello' tool.",
    tools=[say_hello],
)

weather_team = LlmAgent(
    name="weather_agent_v2",
    model="gemini-2.0-flash",
    description="The main coordinator agent. Handles weather requests and delegates greetings to specialists.",
    instruction="You are the main Weather Agent coordinating a team. Your primary responsibility is to provide"
    " weather information. Use the 'get_weather' tool ONLY for specific weather requests. You have a"
    " specialized sub-agent: 'greeting_agent': handles simple greetings like 'Hi', 'Hello'. Delegate to it.",
    tools=[get_weather],
    sub_agents=[greeting_agent],
)


async def call_agent_async(query: str, runner: Runner, user_id: str, session_id: str) -> None:
    content = types.Content(role="user", parts=[types.Part(text=query)])
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=content):
        print(json.dumps(event.model_dump(mode="json", exclude_none=True)), flush=True)


async def main() -> None:
    for app_name, agent, query in (
        ("weather_tutorial_app", root_agent, "What is the weather and the time in New York?"),
        ("weather_team_app", weather_team, "Hello, I am Ana!"),
    ):
        session_service = InMemorySessionService()
        await session_service.create_session(app_name=app_name, user_id="user_1", session_id="session_001")
        runner = Runner(agent=agent, app_name=app_name, session_service=session_service)
        await call_agent_async(query, runner, user_id="user_1", session_id="session_001")
    for agent in (root_agent, greeting_agent, weather_team):
        await agent.canonical_model.api_client.aio.aclose()


if __name__ == "__main__":
    asyncio.run(main())
