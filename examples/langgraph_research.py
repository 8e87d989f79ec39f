"""A typical LangGraph research agent, made durable by one changed line.

Before:   result = graph.invoke({"messages": [("user", QUESTION)]})
After:    result = runtime.run(graph, {"messages": [("user", QUESTION)]})

Every model call and tool call inside the graph becomes a durable step: kill the process in the
middle, run it again, and it continues without repeating completed calls. Needs OPENAI_API_KEY (or
OPENAI_BASE_URL pointing at an OpenAI-compatible endpoint) and Agentspan installed from its repository
with `pip install -e '.[server,langgraph]' langchain-openai`.
"""

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from agentspan.agents import AgentRuntime

QUESTION = "Compare the top workflow orchestration tools for AI agents"


@tool
def search_web(query: str) -> str:
    """Search the web for information."""
    return f"Results for: {query}"


model = ChatOpenAI(model="gpt-4o-mini").bind_tools([search_web])


def agent(state: MessagesState) -> dict:
    return {"messages": [model.invoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode([search_web]))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
graph = builder.compile(name="research-graph")

if __name__ == "__main__":
    with AgentRuntime() as runtime:
        result = runtime.run(graph, {"messages": [("user", QUESTION)]})
        result.print_result()
